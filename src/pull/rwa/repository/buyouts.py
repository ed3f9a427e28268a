"""SQL of buyouts and their votes."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from pull.rwa.models import (
    RwaBuyout,
    RwaVote,
)

# --- buyouts and votes ----------------------------------------------------------------------


async def get_buyout(
    session: AsyncSession, buyout_id: uuid.UUID, *, lock: bool = False
) -> RwaBuyout | None:
    stmt = select(RwaBuyout).where(RwaBuyout.id == buyout_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def buyouts_of(session: AsyncSession, asset_id: uuid.UUID) -> list[RwaBuyout]:
    stmt = (
        select(RwaBuyout)
        .where(RwaBuyout.asset_id == asset_id)
        .order_by(RwaBuyout.created_at.desc())
        .limit(100)
    )
    return list((await session.execute(stmt)).scalars())


async def upsert_vote(
    session: AsyncSession, buyout_id: uuid.UUID, user_id: uuid.UUID, approve: bool, shares: int
) -> None:
    await session.execute(
        text(
            "INSERT INTO rwa_votes (buyout_id, user_id, approve, shares, created_at) "
            "VALUES (:b, :u, :a, :s, now()) ON CONFLICT (buyout_id, user_id) DO UPDATE SET "
            "approve = EXCLUDED.approve, shares = EXCLUDED.shares, created_at = now()"
        ),
        {"b": buyout_id, "u": user_id, "a": approve, "s": shares},
    )


async def tally(session: AsyncSession, buyout_id: uuid.UUID) -> tuple[int, int]:
    row = (
        await session.execute(
            text(
                "SELECT COALESCE(sum(shares) FILTER (WHERE approve), 0)::bigint, "
                "COALESCE(sum(shares) FILTER (WHERE NOT approve), 0)::bigint "
                "FROM rwa_votes WHERE buyout_id = :b"
            ),
            {"b": buyout_id},
        )
    ).one()
    return int(row[0]), int(row[1])


async def vote_of(
    session: AsyncSession, buyout_id: uuid.UUID, user_id: uuid.UUID
) -> RwaVote | None:
    return (
        await session.execute(
            select(RwaVote).where(RwaVote.buyout_id == buyout_id, RwaVote.user_id == user_id)
        )
    ).scalar_one_or_none()
