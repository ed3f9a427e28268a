"""The rewards service: the module's public API (balances, history, adjustments, jobs).

The pieces live by reason to change: `points` (ledger + lots), `earning` (rules and the
event consumer), `tiers`, `streaks`, `referrals`, `redemption`, `leaderboard`. Never commits.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.identity import service as identity
from pull.identity.schemas import RequestMeta
from pull.kit.db import utcnow
from pull.kit.outbox import emit
from pull.ledger import service as ledger
from pull.ledger.schemas import Transaction
from pull.rewards import earning, points, redemption, tiers
from pull.rewards import repository as repo
from pull.rewards.errors import AdjustmentNotFound, FourEyesRequired, InvalidState
from pull.rewards.models import Adjustment
from pull.rewards.schemas import AdjustmentCreate, BalanceRead, Expiring

__all__ = [
    "BalanceRead",
    "balance",
    "consume_event",
    "earning",
    "history",
    "points_cash_value",
    "redemption",
]

consume_event = earning.consume_event


async def balance(
    *, session: AsyncSession, user_id: uuid.UUID, settings: Settings, now: dt.datetime
) -> BalanceRead:
    """Two statements: the rewards tables' snapshot and the tier window's ledger sum. The
    lots are the source of `available` (equal to the ledger's available balance by the
    module's invariant, checked by the property tests and `check_consistency`), less the
    points of lots past their date that the next expiry run moves."""
    snap = await repo.snapshot(
        session, user_id, now, now + dt.timedelta(days=settings.rewards_expiry_warning_days)
    )
    points_365 = await tiers.qualifying_points(session=session, user_id=user_id, now=now)
    status = tiers.status_of(snap.tier, points_365, settings)
    return BalanceRead(
        available=snap.spendable,
        pending=snap.held,
        lifetime_earned=snap.earned,
        lifetime_redeemed=snap.redeemed,
        tier=status.tier,
        tier_multiplier_bp=status.multiplier_bp,
        qualifying_points=status.qualifying_points,
        next_tier=status.next_tier,
        points_to_next_tier=status.points_to_next_tier,
        expiring=[Expiring(points=p, expires_at=at) for p, at in snap.expiring],
    )


async def history(
    *, session: AsyncSession, user_id: uuid.UUID, before_id: int | None, limit: int
) -> list[Transaction]:
    """The entries of the user's points account, newest first."""
    return await ledger.transactions(
        session=session, user_id=user_id, before_id=before_id, limit=limit, account_kind="points"
    )


# --- manual adjustments (audited; four-eyes above the threshold) -----------------------------


async def _apply_adjustment(
    session: AsyncSession, row: Adjustment, *, settings: Settings, now: dt.datetime
) -> None:
    if row.points > 0:
        earned = await points.earn(
            session=session,
            user_id=row.user_id,
            points=row.points,
            qualifying=row.qualifying,
            source="adjustment",
            key=f"adjustment:{row.id}",
            expires_at=now + dt.timedelta(days=settings.rewards_points_expiry_days),
            now=now,
            source_ref=f"adjustment:{row.id}",
        )
        row.applied_points = earned.points if earned else 0
        if row.qualifying:
            await tiers.upgrade(session=session, user_id=row.user_id, settings=settings, now=now)
    else:
        row.applied_points = -await points.debit(
            session=session, user_id=row.user_id, points=-row.points, ref=str(row.id), now=now
        )
    row.status = "applied"


async def create_adjustment(
    *,
    session: AsyncSession,
    data: AdjustmentCreate,
    actor_id: uuid.UUID,
    settings: Settings,
    meta: RequestMeta | None = None,
) -> Adjustment:
    if data.points == 0:
        raise InvalidState("An adjustment moves at least one point", code="INVALID_ADJUSTMENT")
    if await identity.get_user(session=session, user_id=data.user_id) is None:
        raise AdjustmentNotFound("User not found", code="USER_NOT_FOUND")
    now = utcnow()
    row = Adjustment(
        id=uuid.uuid4(),
        user_id=data.user_id,
        points=data.points,
        qualifying=data.qualifying,
        reason=data.reason,
        status="pending_approval",
        requested_by=actor_id,
        created_at=now,
    )
    repo.add(session, row)
    await repo.flush(session)
    if abs(data.points) <= settings.rewards_adjustment_approval_threshold:
        row.decided_by = actor_id
        row.decided_at = now
        await _apply_adjustment(session, row, settings=settings, now=now)
    identity.record_audit(
        session,
        action="rewards.adjustment_requested",
        meta=meta,
        actor_id=actor_id,
        resource=f"rewards_adjustment:{row.id}",
        details={"user_id": str(data.user_id), "points": data.points, "status": row.status},
    )
    await repo.flush(session)
    return row


async def decide_adjustment(
    *,
    session: AsyncSession,
    adjustment_id: uuid.UUID,
    actor_id: uuid.UUID,
    approve: bool,
    settings: Settings,
    meta: RequestMeta | None = None,
) -> Adjustment:
    row = await repo.adjustment(session, adjustment_id, lock=True)
    if row is None:
        raise AdjustmentNotFound()
    if row.status != "pending_approval":
        raise InvalidState(details={"status": row.status})
    if row.requested_by == actor_id:
        raise FourEyesRequired()
    now = utcnow()
    row.decided_by = actor_id
    row.decided_at = now
    if approve:
        await _apply_adjustment(session, row, settings=settings, now=now)
    else:
        row.status = "rejected"
    identity.record_audit(
        session,
        action="rewards.adjustment_" + ("approved" if approve else "rejected"),
        meta=meta,
        actor_id=actor_id,
        resource=f"rewards_adjustment:{row.id}",
        details={"user_id": str(row.user_id), "points": row.points},
    )
    await repo.flush(session)
    return row


async def list_adjustments(*, session: AsyncSession, status: str | None) -> list[Adjustment]:
    return await repo.adjustments(session, status=status)


# --- jobs -----------------------------------------------------------------------------------


async def expire_batch(*, session: AsyncSession, now: dt.datetime, limit: int = 500) -> int:
    return await points.expire_due(session=session, now=now, limit=limit)


def _warning_body(lots: list[tuple[int, int, dt.datetime]]) -> str:
    lines = [f"- {p:,} points on {at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC" for _, p, at in lots]
    return (
        "Some of your PULL reward points expire soon:\n"
        + "\n".join(lines)
        + "\n\nPoints you spend are taken from the soonest-expiring first. "
        "See the rewards catalog in the app to use them before they expire.\n"
    )


async def warn_batch(
    *, session: AsyncSession, settings: Settings, now: dt.datetime, limit: int = 500
) -> int:
    """Warn each user of their lots expiring within the warning window, each lot once: an
    e-mail through identity's mailer (in this transaction: the table in development, SMTP
    when configured) and the outbox event `rewards.points_expiring` (relayed on Redis
    `events:rewards.points_expiring` for in-app notifications)."""
    horizon = now + dt.timedelta(days=settings.rewards_expiry_warning_days)
    rows = await repo.lots_to_warn(session, now, horizon, limit)
    by_user: dict[uuid.UUID, list[tuple[int, int, dt.datetime]]] = {}
    for lot_id, user_id, remaining, expires_at in rows:
        by_user.setdefault(user_id, []).append((lot_id, int(remaining), expires_at))
    for user_id, lots in by_user.items():
        total = sum(p for _, p, _ in lots)
        first = min(at for _, _, at in lots)
        await identity.email_user(
            session=session,
            settings=settings,
            user_id=user_id,
            subject=f"{total:,} PULL points expire soon",
            body=_warning_body(lots),
            kind="rewards_points_expiring",
        )
        emit(
            session,
            topic="rewards.points_expiring",
            key=str(user_id),
            payload={
                "user_id": str(user_id),
                "points": total,
                "first_expires_at": first.isoformat(),
                # This module has e-mailed the user already (above): a consumer of this
                # event should not e-mail the same warning again.
                "emailed": True,
                "lots": [
                    {"lot_id": i, "points": p, "expires_at": at.isoformat()} for i, p, at in lots
                ],
            },
        )
    if rows:
        await repo.mark_warned(session, [r[0] for r in rows], now)
    return len(rows)


async def review_batch(
    *, session: AsyncSession, settings: Settings, now: dt.datetime, limit: int = 200
) -> int:
    return await tiers.review_due(session=session, settings=settings, now=now, limit=limit)


@dataclass(frozen=True, slots=True)
class Consistency:
    """Per user: ledger available points vs the sum of their lots (must be equal)."""

    users: int
    mismatched: dict[str, tuple[int, int]]


async def check_consistency(*, session: AsyncSession) -> Consistency:
    lots = await repo.all_lot_remaining(session)
    bad: dict[str, tuple[int, int]] = {}
    for user_id, remaining in lots.items():
        available = await ledger.account_available(session=session, account=points.account(user_id))
        if available != remaining:
            bad[str(user_id)] = (available, remaining)
    return Consistency(users=len(lots), mismatched=bad)


def points_cash_value(*, points: int, settings: Settings) -> int:
    """Cents the points would bring as a cash redemption (REWARDS_CASH_POINTS_PER_DOLLAR):
    the value the portfolio shows for them."""
    return redemption.cash_cents(points, settings)
