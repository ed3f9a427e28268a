"""All SQL of the KYC module. Functions flush at most; the caller's boundary commits."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pull.kyc.models import (
    OPEN_STATUSES,
    KycApplication,
    KycLimitUsage,
    KycProfile,
    KycWebhookEvent,
)

# --- profiles ------------------------------------------------------------------------------


async def profile(
    session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False, fresh: bool = False
) -> KycProfile | None:
    """`fresh`: the row as this statement reads it, even if the session holds it already."""
    stmt = select(KycProfile).where(KycProfile.user_id == user_id)
    if lock:
        stmt = stmt.with_for_update()
    if fresh:
        stmt = stmt.execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def profiles_tiers(
    session: AsyncSession, user_ids: list[uuid.UUID]
) -> list[tuple[uuid.UUID, str, dt.datetime | None]]:
    if not user_ids:
        return []
    stmt = select(KycProfile.user_id, KycProfile.tier, KycProfile.expires_at).where(
        KycProfile.user_id.in_(user_ids)
    )
    return [(r[0], r[1], r[2]) for r in (await session.execute(stmt)).all()]


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


@dataclass(frozen=True)
class Consumed:
    outcome: str  # ok, replay, conflict, kyc_required, single, window
    tier: str
    window_index: int | None
    used: int | None


_CONSUME = text(
    "SELECT outcome, tier, window_index, used FROM kyc_consume("
    "CAST(:u AS uuid), :a, :ref, :amt, CAST(:now AS timestamptz), CAST(:limits AS jsonb), "
    "CAST(:since AS timestamptz[]))"
)


async def consume(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    action: str,
    reference: str,
    amount_cents: int,
    now: dt.datetime,
    limits: str,
    since: Sequence[dt.datetime],
) -> Consumed:
    """Check and record a limit use in one round trip (the `kyc_consume` function)."""
    row = (
        await session.execute(
            _CONSUME,
            {
                "u": user_id,
                "a": action,
                "ref": reference,
                "amt": amount_cents,
                "now": now,
                "limits": limits,
                "since": list(since),
            },
        )
    ).one()
    return Consumed(row[0], row[1], row[2], None if row[3] is None else int(row[3]))


def add_usage(session: AsyncSession, usage: KycLimitUsage) -> None:
    session.add(usage)


# --- applications --------------------------------------------------------------------------


def add_application(session: AsyncSession, app: KycApplication) -> None:
    session.add(app)


async def application(
    session: AsyncSession, application_id: uuid.UUID, *, lock: bool = False
) -> KycApplication | None:
    stmt = select(KycApplication).where(KycApplication.id == application_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def open_application(
    session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False
) -> KycApplication | None:
    stmt = select(KycApplication).where(
        KycApplication.user_id == user_id, KycApplication.status.in_(OPEN_STATUSES)
    )
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def latest_application(
    session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False
) -> KycApplication | None:
    stmt = (
        select(KycApplication)
        .where(KycApplication.user_id == user_id)
        .order_by(KycApplication.created_at.desc(), KycApplication.id.desc())
        .limit(1)
    )
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def application_by_ref(session: AsyncSession, column: str, ref: str) -> KycApplication | None:
    col = {
        "inquiry_id": KycApplication.inquiry_id,
        "background_check_id": KycApplication.background_check_id,
        "accreditation_id": KycApplication.accreditation_id,
    }[column]
    stmt = select(KycApplication).where(col == ref).limit(1)
    return (await session.scalars(stmt)).one_or_none()


async def applications_in_review(
    session: AsyncSession, *, after: tuple[dt.datetime, uuid.UUID] | None, limit: int
) -> Sequence[KycApplication]:
    stmt = select(KycApplication).where(KycApplication.status == "manual_review")
    if after is not None:
        created, app_id = after
        stmt = stmt.where(
            (KycApplication.created_at > created)
            | ((KycApplication.created_at == created) & (KycApplication.id > app_id))
        )
    stmt = stmt.order_by(KycApplication.created_at, KycApplication.id).limit(limit)
    return (await session.scalars(stmt)).all()


# --- webhooks ----------------------------------------------------------------------------------


async def insert_webhook_event(session: AsyncSession, event: dict[str, object]) -> bool:
    """Store a webhook once per (provider, event id); False when it was already stored."""
    inserted = await session.scalar(
        insert(KycWebhookEvent)
        .values(**event)
        .on_conflict_do_nothing(constraint="uq_kyc_webhook_events_provider_event")
        .returning(KycWebhookEvent.id)
    )
    return inserted is not None


async def latest_approved(session: AsyncSession, user_id: uuid.UUID) -> KycApplication | None:
    stmt = (
        select(KycApplication)
        .where(KycApplication.user_id == user_id, KycApplication.status == "approved")
        .order_by(KycApplication.decided_at.desc().nulls_last(), KycApplication.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).one_or_none()
