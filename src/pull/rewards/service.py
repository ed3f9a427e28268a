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

__all__ = ["BalanceRead", "balance", "consume_event", "earning", "history", "redemption"]

consume_event = earning.consume_event


async def balance(
    *, session: AsyncSession, user_id: uuid.UUID, settings: Settings, now: dt.datetime
) -> BalanceRead:
    acct = points.account(user_id)
    available = await ledger.account_available(session=session, account=acct)
    posted = await ledger.account_balance(session=session, account=acct)
    due = await points.due_remaining(session, user_id, now)
    _, earned = await repo.lot_totals(session, user_id)
    status = await tiers.status(session=session, user_id=user_id, settings=settings, now=now)
    soon = await repo.expiring(
        session, user_id, now, now + dt.timedelta(days=settings.rewards_expiry_warning_days)
    )
    return BalanceRead(
        available=available - due,
        pending=posted - available,
        lifetime_earned=earned,
        lifetime_redeemed=await repo.lifetime_redeemed(session, user_id),
        tier=status.tier,
        tier_multiplier_bp=status.multiplier_bp,
        qualifying_points=status.qualifying_points,
        next_tier=status.next_tier,
        points_to_next_tier=status.points_to_next_tier,
        expiring=[Expiring(points=p, expires_at=at) for p, at in soon],
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


async def warn_batch(
    *, session: AsyncSession, settings: Settings, now: dt.datetime, limit: int = 500
) -> int:
    """Warn (outbox event `rewards.points_expiring`, relayed on Redis `events:...` for the
    notification path) about lots expiring within the warning window; each lot once."""
    horizon = now + dt.timedelta(days=settings.rewards_expiry_warning_days)
    rows = await repo.lots_to_warn(session, now, horizon, limit)
    by_user: dict[uuid.UUID, list[tuple[int, int, dt.datetime]]] = {}
    for lot_id, user_id, remaining, expires_at in rows:
        by_user.setdefault(user_id, []).append((lot_id, int(remaining), expires_at))
    for user_id, lots in by_user.items():
        emit(
            session,
            topic="rewards.points_expiring",
            key=str(user_id),
            payload={
                "user_id": str(user_id),
                "points": sum(p for _, p, _ in lots),
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
