"""All SQL of the KYC module. Functions flush at most; the caller's boundary commits."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pull.kyc.models import KycLimitUsage, KycProfile

# --- profiles ------------------------------------------------------------------------------


async def profile(
    session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False
) -> KycProfile | None:
    stmt = select(KycProfile).where(KycProfile.user_id == user_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def ensure_profile(session: AsyncSession, user_id: uuid.UUID) -> KycProfile:
    """The user's profile row, created at tier none if absent, locked FOR UPDATE."""
    await session.execute(
        insert(KycProfile)
        .values(user_id=user_id, tier="none")
        .on_conflict_do_nothing(index_elements=[KycProfile.user_id])
    )
    row = await profile(session, user_id, lock=True)
    assert row is not None
    await session.refresh(row)
    return row


async def profiles_expiring(
    session: AsyncSession, *, before: dt.datetime, limit: int = 500
) -> Sequence[KycProfile]:
    stmt = (
        select(KycProfile)
        .where(KycProfile.tier != "none", KycProfile.expires_at <= before)
        .order_by(KycProfile.expires_at)
        .limit(limit)
    )
    return (await session.scalars(stmt)).all()


# --- limit usage ---------------------------------------------------------------------------


async def usage_by_reference(
    session: AsyncSession, reference: str, *, lock: bool = False
) -> KycLimitUsage | None:
    stmt = select(KycLimitUsage).where(KycLimitUsage.reference == reference)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def used_since(
    session: AsyncSession, user_id: uuid.UUID, action: str, since: dt.datetime
) -> int:
    """Net usage (amount less released) of rows created after `since`."""
    total = await session.scalar(
        select(
            func.coalesce(func.sum(KycLimitUsage.amount_cents - KycLimitUsage.released_cents), 0)
        ).where(
            KycLimitUsage.user_id == user_id,
            KycLimitUsage.action == action,
            KycLimitUsage.created_at > since,
        )
    )
    return int(total or 0)


async def usage_rows_since(
    session: AsyncSession, user_id: uuid.UUID, action: str, since: dt.datetime
) -> list[tuple[dt.datetime, int]]:
    """(created_at, net cents) of the rows still in the window, oldest first."""
    net = KycLimitUsage.amount_cents - KycLimitUsage.released_cents
    rows = await session.execute(
        select(KycLimitUsage.created_at, net)
        .where(
            KycLimitUsage.user_id == user_id,
            KycLimitUsage.action == action,
            KycLimitUsage.created_at > since,
            net > 0,
        )
        .order_by(KycLimitUsage.created_at, KycLimitUsage.id)
    )
    return [(created, int(cents)) for created, cents in rows.all()]


def add_usage(session: AsyncSession, usage: KycLimitUsage) -> None:
    session.add(usage)
