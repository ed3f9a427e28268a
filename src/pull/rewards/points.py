"""Points on the ledger, and the lots behind them.

A user's points are the PTS account `user_account(user, "points", "PTS")`. Earning moves points
from the program account `rewards_pool` to the user and records a lot with its own expiry;
spending takes from the soonest-expiring lots first; expiry moves what is left of a lot to
`rewards_expired`; redemption holds points towards `rewards_redeemed` (a pending transfer,
posted on fulfilment, voided on failure). Invariant: a user's available ledger balance equals
the sum of `remaining` over their lots. Lots are locked before the ledger account, everywhere.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pull.kit.outbox import emit
from pull.ledger import service as ledger
from pull.rewards import repository as repo
from pull.rewards.errors import InsufficientPoints

POOL = ledger.system_account("rewards_pool", "PTS")
EXPIRED = ledger.system_account("rewards_expired", "PTS")
REDEEMED = ledger.system_account("rewards_redeemed", "PTS")

EARN_QUALIFYING = "rewards_earn_qualifying"
EARN_PROMOTIONAL = "rewards_earn_promotional"
REVERSE_QUALIFYING = "rewards_reversal_qualifying"
REVERSE_PROMOTIONAL = "rewards_reversal_promotional"
REDEMPTION = "rewards_redemption"
REFUND = "rewards_refund"
EXPIRY = "rewards_expiry"
ADJUSTMENT = "rewards_adjustment"
# Transfer kinds that count as "earned" (leaderboards): earnings net of their reversals.
EARNED_KINDS = (EARN_QUALIFYING, EARN_PROMOTIONAL, REVERSE_QUALIFYING, REVERSE_PROMOTIONAL)
QUALIFYING_KINDS = (EARN_QUALIFYING, REVERSE_QUALIFYING)


def account(user_id: uuid.UUID) -> ledger.AccountRef:
    return ledger.user_account(user_id, "points", "PTS")


@dataclass(frozen=True, slots=True)
class Earned:
    lot_id: int
    points: int
    expires_at: dt.datetime
    replayed: bool


async def earn(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    points: int,
    qualifying: bool,
    source: str,
    key: str,
    expires_at: dt.datetime,
    now: dt.datetime,
    source_ref: str | None = None,
    rule_id: int | None = None,
    event_id: int | None = None,
    market: str | None = None,
) -> Earned | None:
    """Credit `points` as a new lot. `key` makes it idempotent: a replay moves nothing."""
    if points <= 0:
        return None
    transfer = await ledger.transfer(
        session=session,
        idempotency_key=f"rewards:earn:{key}",
        kind=EARN_QUALIFYING if qualifying else EARN_PROMOTIONAL,
        legs=[ledger.Leg(POOL, -points), ledger.Leg(account(user_id), points)],
        reference=source_ref,
        metadata={"source": source, "rule_id": rule_id, "event_id": event_id},
    )
    if transfer.replayed:
        lot = await repo.lot_by_key(session, key)
        assert lot is not None
        return Earned(lot.id, lot.points, lot.expires_at, replayed=True)
    lot_id = await repo.insert_lot(
        session,
        key=key,
        user_id=user_id,
        points=points,
        remaining=points,
        qualifying=qualifying,
        source=source,
        source_ref=source_ref,
        rule_id=rule_id,
        event_id=event_id,
        transfer_id=transfer.id,
        earned_at=now,
        expires_at=expires_at,
        market=market,
    )
    assert lot_id is not None
    emit(
        session,
        topic="rewards.earned",
        key=str(user_id),
        payload={
            "user_id": str(user_id),
            "lot_id": lot_id,
            "points": points,
            "qualifying": qualifying,
            "source": source,
            "at": now.isoformat(),
        },
    )
    return Earned(lot_id, points, expires_at, replayed=False)


def allocate(lots: Sequence[repo.Spendable], points: int) -> list[tuple[int, int]]:
    """Take `points` from lots in the order given; [(lot_id, taken)]."""
    takes: list[tuple[int, int]] = []
    left = points
    for lot in lots:
        if left == 0:
            break
        part = min(lot.remaining, left)
        takes.append((lot.lot_id, part))
        left -= part
    if left:
        raise InsufficientPoints(details={"needed": points, "available": points - left})
    return takes


async def hold(
    *, session: AsyncSession, user_id: uuid.UUID, points: int, ref: str, now: dt.datetime
) -> None:
    """Reserve points for a redemption (soonest-expiring lots first) as a pending transfer."""
    lots = await repo.lock_spendable(session, user_id, now)
    takes = allocate(lots, points)
    try:
        await ledger.transfer(
            session=session,
            idempotency_key=f"rewards:redeem:{ref}",
            kind=REDEMPTION,
            legs=[ledger.Leg(account(user_id), -points), ledger.Leg(REDEEMED, points)],
            reference=f"redemption:{ref}",
            pending=True,
        )
    except ledger.InsufficientFunds as exc:
        raise InsufficientPoints() from exc
    await repo.take(session, takes, purpose="redemption", ref=ref)


async def settle(*, session: AsyncSession, ref: str) -> None:
    """The redemption is fulfilled: post its hold."""
    await ledger.post_pending(session=session, idempotency_key=f"rewards:redeem:{ref}")


async def release(*, session: AsyncSession, ref: str, now: dt.datetime) -> None:
    """The redemption failed: void its hold and give the points back to their own lots."""
    await ledger.void_pending(session=session, idempotency_key=f"rewards:redeem:{ref}")
    await repo.restore_uses(session, purpose="redemption", ref=ref, now=now)


async def refund(
    *, session: AsyncSession, user_id: uuid.UUID, points: int, ref: str, now: dt.datetime
) -> None:
    """Refund a fulfilled redemption: the points come back, into the lots they came from."""
    await ledger.transfer(
        session=session,
        idempotency_key=f"rewards:refund:{ref}",
        kind=REFUND,
        legs=[ledger.Leg(REDEEMED, -points), ledger.Leg(account(user_id), points)],
        reference=f"redemption:{ref}",
    )
    await repo.restore_uses(session, purpose="redemption", ref=ref, now=now)


@dataclass(frozen=True, slots=True)
class Reversal:
    lot_id: int
    taken: int
    unrecovered: int


async def reverse_lot(*, session: AsyncSession, lot_id: int, now: dt.datetime) -> Reversal:
    """Take back an earning: its lot's points first, then (points already spent) from the
    user's other lots, soonest-expiring first. Points that already expired are not taken
    again; what the user no longer has is `unrecovered` (a balance never goes below zero)."""
    lot = await repo.lot_for_update(session, lot_id)
    if lot is None or lot.reversed_at is not None:
        return Reversal(lot_id, 0, 0)
    target = lot.points - lot.expired_points
    lots = await repo.lock_spendable(session, lot.user_id, now, first=lot.id)
    ordered = sorted(lots, key=lambda s: s.lot_id != lot.id)
    available = sum(s.remaining for s in ordered)
    taken = min(target, available)
    if taken > 0:
        takes = allocate(ordered, taken)
        await ledger.transfer(
            session=session,
            idempotency_key=f"rewards:reverse:{lot.id}",
            kind=REVERSE_QUALIFYING if lot.qualifying else REVERSE_PROMOTIONAL,
            legs=[ledger.Leg(account(lot.user_id), -taken), ledger.Leg(POOL, taken)],
            reference=lot.source_ref,
            metadata={"lot_id": lot.id, "earned": lot.points},
        )
        await repo.take(session, takes, purpose="reversal", ref=str(lot.id))
        emit(
            session,
            topic="rewards.earned",
            key=str(lot.user_id),
            payload={
                "user_id": str(lot.user_id),
                "lot_id": -lot.id,
                "points": -taken,
                "qualifying": lot.qualifying,
                "source": "reversal",
                "at": now.isoformat(),
            },
        )
    await repo.mark_reversed(session, lot.id, now)
    return Reversal(lot.id, taken, target - taken)


async def reverse_source(
    *, session: AsyncSession, source_ref: str, now: dt.datetime
) -> list[Reversal]:
    """Reverse every earning made for one source (a deposit, an order)."""
    out = []
    for lot in await repo.lots_by_source(session, source_ref):
        if lot.reversed_at is None:
            out.append(await reverse_lot(session=session, lot_id=lot.id, now=now))
    return out


async def reverse_market(*, session: AsyncSession, ticker: str, now: dt.datetime) -> list[Reversal]:
    """A voided exchange market: reverse every earning its trades made, and remember the void
    (a trade of it relayed later earns nothing)."""
    await repo.mark_voided(session, ticker)
    return [
        await reverse_lot(session=session, lot_id=lot.id, now=now)
        for lot in await repo.lots_by_market(session, ticker)
    ]


async def debit(
    *, session: AsyncSession, user_id: uuid.UUID, points: int, ref: str, now: dt.datetime
) -> int:
    """Take up to `points` (soonest-expiring first) back to the program: negative manual
    adjustments. Returns what was taken."""
    lots = await repo.lock_spendable(session, user_id, now)
    taken = min(points, sum(s.remaining for s in lots))
    if taken <= 0:
        return 0
    takes = allocate(lots, taken)
    await ledger.transfer(
        session=session,
        idempotency_key=f"rewards:debit:{ref}",
        kind=ADJUSTMENT,
        legs=[ledger.Leg(account(user_id), -taken), ledger.Leg(POOL, taken)],
        reference=f"adjustment:{ref}",
    )
    await repo.take(session, takes, purpose="adjustment", ref=ref)
    return taken


async def expire_due(*, session: AsyncSession, now: dt.datetime, limit: int = 500) -> int:
    """Expire lots past their date (what is left of each goes to `rewards_expired`). Locked
    rows are skipped, so runners can work side by side; returns the lots expired."""
    rows = await repo.due_lots(session, now, limit)
    for lot_id, user_id, remaining in rows:
        lot = await repo.lot_for_update(session, lot_id)
        assert lot is not None
        await ledger.transfer(
            session=session,
            idempotency_key=f"rewards:expire:{lot_id}:{lot.expired_points + remaining}",
            kind=EXPIRY,
            legs=[ledger.Leg(account(user_id), -int(remaining)), ledger.Leg(EXPIRED, remaining)],
            reference=f"lot:{lot_id}",
        )
        await repo.expire_lot(session, lot_id, int(remaining))
    return len(rows)
