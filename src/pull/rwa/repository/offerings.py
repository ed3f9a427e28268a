"""SQL of offerings and subscriptions: the hot-drop counter and the per-investor cap."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from pull.rwa.models import (
    RwaOffering,
    RwaSubscription,
)

# --- offerings ------------------------------------------------------------------------------


async def get_offering(
    session: AsyncSession, offering_id: uuid.UUID, *, lock: bool = False
) -> RwaOffering | None:
    stmt = select(RwaOffering).where(RwaOffering.id == offering_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def offerings_of(session: AsyncSession, asset_id: uuid.UUID) -> list[RwaOffering]:
    stmt = (
        select(RwaOffering)
        .where(RwaOffering.asset_id == asset_id)
        .order_by(RwaOffering.created_at.desc())
    )
    return list((await session.execute(stmt)).scalars())


async def live_offering_of(session: AsyncSession, asset_id: uuid.UUID) -> RwaOffering | None:
    stmt = (
        select(RwaOffering)
        .where(RwaOffering.asset_id == asset_id, RwaOffering.status.in_(("draft", "open")))
        .order_by(RwaOffering.created_at.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def open_offerings(session: AsyncSession, limit: int = 100) -> list[RwaOffering]:
    stmt = (
        select(RwaOffering)
        .where(RwaOffering.status == "open")
        .order_by(RwaOffering.closes_at)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def last_offering_prices(
    session: AsyncSession, asset_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The price of each asset's latest funded (else latest) offering."""
    if not asset_ids:
        return {}
    stmt = (
        select(RwaOffering.asset_id, RwaOffering.price_cents)
        .where(RwaOffering.asset_id.in_(asset_ids))
        .ext(distinct_on(RwaOffering.asset_id))
        .order_by(
            RwaOffering.asset_id,
            (RwaOffering.status == "funded").desc(),
            RwaOffering.created_at.desc(),
        )
    )
    return {r[0]: r[1] for r in (await session.execute(stmt)).all()}


async def lock_investor(session: AsyncSession, offering_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Serialize one user's subscriptions to one offering (a transaction advisory lock)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"rwa:sub:{offering_id}:{user_id}"},
    )


async def reserve_subscription(
    session: AsyncSession,
    offering_id: uuid.UUID,
    user_id: uuid.UUID,
    shares: int,
    *,
    cap: int,
    now: dt.datetime,
) -> str:
    """Count a written subscription into its offering in one statement: the shares if they
    fit, the investor if it is their first, refused above the per-investor cap. The caller
    holds the user's `lock_investor`, so the sum of their subscriptions (read in this
    statement, this one included) cannot change under it. 'counted', 'cap', or 'refused'
    (not open, or the shares do not fit)."""
    row = (
        await session.execute(
            text(
                "WITH mine AS (SELECT coalesce(sum(shares), 0) AS held FROM rwa_subscriptions "
                "  WHERE offering_id = :id AND user_id = :u AND status <> 'voided'), "
                "upd AS (UPDATE rwa_offerings o SET shares_subscribed = o.shares_subscribed + :n, "
                "  investors = o.investors + CASE WHEN mine.held = :n THEN 1 ELSE 0 END "
                "  FROM mine WHERE o.id = :id AND o.status = 'open' AND o.opens_at <= :now "
                "  AND o.closes_at > :now AND o.shares_subscribed + :n <= o.total_shares "
                "  AND mine.held <= :cap RETURNING o.id) "
                "SELECT (SELECT count(*) FROM upd), (SELECT held FROM mine)"
            ),
            {"n": shares, "id": offering_id, "u": user_id, "now": now, "cap": cap},
        )
    ).one()
    if row[0]:
        return "counted"
    return "cap" if int(row[1]) > cap else "refused"


# --- subscriptions --------------------------------------------------------------------------


async def user_subscribed(session: AsyncSession, offering_id: uuid.UUID, user_id: uuid.UUID) -> int:
    value = await session.scalar(
        select(func.coalesce(func.sum(RwaSubscription.shares), 0)).where(
            RwaSubscription.offering_id == offering_id,
            RwaSubscription.user_id == user_id,
            RwaSubscription.status != "voided",
        )
    )
    return int(value or 0)


async def subscriptions_to_settle(
    session: AsyncSession, offering_id: uuid.UUID, limit: int
) -> list[RwaSubscription]:
    stmt = (
        select(RwaSubscription)
        .where(RwaSubscription.offering_id == offering_id, RwaSubscription.status == "held")
        .order_by(RwaSubscription.created_at, RwaSubscription.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(stmt)).scalars())


async def user_subscriptions(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[tuple[RwaSubscription, uuid.UUID]]:
    stmt = (
        select(RwaSubscription, RwaOffering.asset_id)
        .join(RwaOffering, RwaOffering.id == RwaSubscription.offering_id)
        .where(RwaSubscription.user_id == user_id)
    )
    if before is not None:
        t, i = before
        stmt = stmt.where(
            or_(
                RwaSubscription.created_at < t,
                and_(RwaSubscription.created_at == t, RwaSubscription.id < i),
            )
        )
    stmt = stmt.order_by(RwaSubscription.created_at.desc(), RwaSubscription.id.desc()).limit(limit)
    return [(r[0], r[1]) for r in (await session.execute(stmt)).all()]
