"""Applying what the broker reports to an order: `converge` (status through the state machine,
fills by the broker's cumulative filled_qty/filled_avg_price, each execution recorded once),
the ledger side of a fill (post the hold, re-hold the rest, proceeds of a sale, a fill above
its hold), and settling a done order (void the rest, release the limit, the sweep journal).

Fills are applied by the broker's cumulative `filled_qty`/`filled_avg_price`: the cost applied
so far is always round_half_up(filled_qty x avg price), so a duplicated, late or missing
execution report can neither double nor lose a cent.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from pull.brokerage import accounts, states
from pull.brokerage import repository as repo
from pull.brokerage.models import BrokerageOrder, BrokeragePosition
from pull.brokerage.money import cents_of, cum_cents
from pull.brokerage.providers.base import BrokerOrder
from pull.kit.db import utcnow
from pull.kyc import service as kyc
from pull.ledger import service as ledger

OMNIBUS = "brokerage_omnibus"
SHORTFALL = "brokerage_shortfall"


def hold_key(order: BrokerageOrder) -> str:
    return f"brokerage:order:{order.id}:hold:{order.hold_seq}"


async def reject(*, session: AsyncSession, order: BrokerageOrder, reason: str) -> None:
    order.status = "rejected"
    order.reject_reason = reason[:500]
    order.updated_at = utcnow()
    await _settle(session, order)


# --- applying what the broker reports ----------------------------------------------------------


async def converge(
    *,
    session: AsyncSession,
    order: BrokerageOrder,
    snap: BrokerOrder,
    source: str,
    apply_fills: bool = True,
    execution_id: str | None = None,
    exec_qty: Decimal | None = None,
    exec_price: Decimal | None = None,
    event_id: str | None = None,
    correction: bool = False,
) -> bool:
    """Bring `order` (locked) to the broker's report `snap`; True if anything changed.

    `correction` (a trade_bust / trade_correct event, `event_id` given): the broker's
    cumulative fill is applied in either direction, once (the event is claimed by id), and
    stream events older than it no longer move fills (their snapshots predate it)."""
    before = (order.status, order.filled_qty)
    if order.broker_order_id is None:
        order.broker_order_id = snap.id
    stale = bool(
        event_id is not None and order.corrected_through and event_id <= order.corrected_through
    )
    if stale:
        apply_fills = False  # a report from before the last correction applied
    elif correction and event_id is not None:
        await _apply_correction(session, order, snap, event_id)
        apply_fills = False
    if snap.filled_qty > order.broker_filled_qty:
        order.broker_filled_qty = snap.filled_qty
    moved_qty, moved_cents = Decimal(0), 0
    if apply_fills and snap.filled_qty > order.filled_qty and snap.filled_avg_price:
        cum = cum_cents(snap.filled_qty, snap.filled_avg_price)
        moved_qty = snap.filled_qty - order.filled_qty
        moved_cents = max(0, cum - order.filled_cents)
        await _apply_fill(session, order, snap, moved_qty, moved_cents)
        order.filled_qty = snap.filled_qty
        order.filled_cents += moved_cents
        order.filled_avg_price = snap.filled_avg_price
    if execution_id is not None or moved_qty > 0:
        price = exec_price or snap.filled_avg_price or Decimal(0)
        qty = exec_qty or moved_qty
        await repo.claim_execution(
            session,
            {
                "execution_id": execution_id or f"{source}:{snap.id}:{snap.filled_qty}",
                "order_id": order.id,
                "user_id": order.user_id,
                "symbol": order.symbol,
                "side": order.side,
                "qty": qty,
                "price": price,
                "amount_cents": cents_of(qty * price),
                "applied_qty": moved_qty,
                "applied_cents": moved_cents,
                "source": source,
            },
        )
    reported = snap.status
    if not apply_fills and reported in ("filled", "partially_filled"):
        if order.filled_qty < snap.filled_qty:
            reported = "new"  # routed; the fills themselves arrive as executions
    target = states.next_status(order.status, reported, partially_filled=order.filled_qty > 0)
    if target != order.status:
        order.status = target
    if (order.status, order.filled_qty) != before:
        order.updated_at = utcnow()
    if (
        order.status in states.TERMINAL
        and not order.settled
        and order.filled_qty >= order.broker_filled_qty
    ):
        await _settle(session, order)
    await repo.flush(session)
    return (order.status, order.filled_qty) != before


async def _apply_fill(
    session: AsyncSession, order: BrokerageOrder, snap: BrokerOrder, qty: Decimal, cents: int
) -> None:
    position = await repo.position(session, order.user_id, order.symbol, lock=True)
    if position is None:
        position = BrokeragePosition(
            user_id=order.user_id,
            symbol=order.symbol,
            asset_class=order.asset_class,
            qty=Decimal(0),
            cost_cents=0,
            realized_cents=0,
        )
        repo.add(session, position)
    ref = f"brokerage_order:{order.id}"
    cum = f"{snap.filled_qty.normalize():f}"
    if order.side == "buy":
        post = min(cents, order.hold_cents)
        rest = order.hold_cents - post
        if order.hold_cents > 0:
            batch = repo.batch_of(session)
            if post > 0 and batch is not None and (rest == 0 or snap.status in states.TERMINAL):
                # nothing is held again after it: posted with the batch's others, at its end
                batch.posts.append((hold_key(order), post))
            elif post > 0:
                await ledger.post_pending(
                    session=session, idempotency_key=hold_key(order), amount=post
                )
            else:
                await ledger.void_pending(session=session, idempotency_key=hold_key(order))
            order.hold_cents = 0
            if rest > 0 and snap.status not in states.TERMINAL:
                order.hold_seq += 1
                await ledger.transfer(
                    session=session,
                    idempotency_key=hold_key(order),
                    kind="brokerage.hold",
                    legs=[
                        ledger.Leg(ledger.user_account(order.user_id, "cash"), -rest),
                        ledger.Leg(ledger.system_account(OMNIBUS), rest),
                    ],
                    reference=ref,
                    pending=True,
                )
                order.hold_cents = rest
        extra = cents - post
        if extra > 0:
            await _take_extra(session, order, extra, key=f"brokerage:order:{order.id}:extra:{cum}")
        position.qty += qty
        position.cost_cents += cents
    else:
        await ledger.transfer(
            session=session,
            idempotency_key=f"brokerage:order:{order.id}:proceeds:{cum}",
            kind="brokerage.sale",
            legs=[
                ledger.Leg(ledger.system_account(OMNIBUS), -cents),
                ledger.Leg(ledger.user_account(order.user_id, "cash"), cents),
            ],
            reference=ref,
        )
        if qty > position.qty:
            repo.add_alert(
                session,
                kind="oversold",
                user_id=order.user_id,
                subject=f"order:{order.id}",
                details={"sold": str(qty), "held": str(position.qty)},
            )
            qty = position.qty
        removed = (
            position.cost_cents
            if qty == position.qty
            else cents_of(Decimal(position.cost_cents) * qty / position.qty / 100)
        )
        position.qty -= qty
        position.cost_cents -= removed
        position.realized_cents += cents - removed
    position.updated_at = utcnow()


async def _take_extra(
    session: AsyncSession, order: BrokerageOrder, cents: int, *, key: str
) -> None:
    """A fill that cost more than its hold: from the user's cash, else (the broker has executed
    already) from the shortfall account, with an alert."""
    legs = [
        ledger.Leg(ledger.user_account(order.user_id, "cash"), -cents),
        ledger.Leg(ledger.system_account(OMNIBUS), cents),
    ]
    try:
        await ledger.transfer(
            session=session,
            idempotency_key=key,
            kind="brokerage.fill",
            legs=legs,
            reference=f"brokerage_order:{order.id}",
        )
    except ledger.InsufficientFunds:
        await ledger.transfer(
            session=session,
            idempotency_key=key + ":shortfall",
            kind="brokerage.shortfall",
            legs=[
                ledger.Leg(ledger.system_account(SHORTFALL), -cents),
                ledger.Leg(ledger.system_account(OMNIBUS), cents),
            ],
            reference=f"brokerage_order:{order.id}",
        )
        repo.add_alert(
            session,
            kind="fill_over_hold",
            user_id=order.user_id,
            subject=key,
            details={"cents": cents},
        )


async def _settle(session: AsyncSession, order: BrokerageOrder) -> None:
    """The order is done: void the rest of its hold, give back its trading limit, and journal
    what the broker account no longer needs back to the firm."""
    if order.hold_cents > 0:
        await ledger.void_pending(session=session, idempotency_key=hold_key(order))
        order.hold_cents = 0
    if order.side == "buy":
        sweep = order.journaled_cents - order.filled_cents
        if sweep > 0:  # (0: nothing to give back; release_limit would change nothing)
            await kyc.release_limit(
                session=session, reference=f"brokerage:{order.id}", amount_cents=sweep
            )
        fund = await repo.journal(session, f"order:{order.id}:fund")
        if fund is not None and fund.status != "executed":
            sweep = 0
            if fund.status == "pending":
                fund.status = "failed"  # never needed: the order is done
    else:
        sweep = order.filled_cents
    await accounts.queue_journal(
        session=session,
        key=f"order:{order.id}:sweep",
        user_id=order.user_id,
        direction="to_firm",
        amount_cents=sweep,
    )
    order.settled = True


# --- corrections (trade_bust, trade_correct) ----------------------------------------------------


async def _apply_correction(
    session: AsyncSession, order: BrokerageOrder, snap: BrokerOrder, event_id: str
) -> None:
    """Move the order's applied fill to the broker's corrected cumulative state: the cash
    difference between PULL's cash and the omnibus (buy: a refund or a further charge; sell:
    proceeds taken back or added), the position's qty and cost, and, when the order was
    settled already, the journal that brings the broker account back to what it needs.
    cash + positions at cost - realized P&L is unchanged."""
    target_qty = snap.filled_qty
    target_cents = cum_cents(snap.filled_qty, snap.filled_avg_price) if snap.filled_avg_price else 0
    dq = target_qty - order.filled_qty
    dc = target_cents - order.filled_cents
    order.corrected_through = event_id
    order.broker_filled_qty = snap.filled_qty
    if dq == 0 and dc == 0:
        return
    buy = order.side == "buy"
    to_user = -dc if buy else dc
    key = f"brokerage:order:{order.id}:correct:{event_id}"
    ref = f"brokerage_order:{order.id}"
    if to_user > 0:
        await ledger.transfer(
            session=session,
            idempotency_key=key,
            kind="brokerage.correction",
            legs=[
                ledger.Leg(ledger.system_account(OMNIBUS), -to_user),
                ledger.Leg(ledger.user_account(order.user_id, "cash"), to_user),
            ],
            reference=ref,
        )
    elif to_user < 0:
        await _take_extra(session, order, -to_user, key=key)
    position = await repo.position(session, order.user_id, order.symbol, lock=True)
    if position is None:
        position = BrokeragePosition(
            user_id=order.user_id,
            symbol=order.symbol,
            asset_class=order.asset_class,
            qty=Decimal(0),
            cost_cents=0,
            realized_cents=0,
        )
        repo.add(session, position)
    if buy:
        d_cost = dc
        d_qty = dq
    elif dq < 0:  # shares sold are given back: at the position's average cost
        d_qty = -dq
        d_cost = (
            cents_of(Decimal(position.cost_cents) * d_qty / position.qty / 100)
            if position.qty > 0
            else -dc
        )
    else:  # more shares sold than reported before: their cost leaves pro rata
        d_qty = -min(dq, position.qty)
        d_cost = (
            -position.cost_cents
            if -d_qty == position.qty
            else -cents_of(Decimal(position.cost_cents) * -d_qty / position.qty / 100)
            if position.qty > 0
            else 0
        )
    if position.qty + d_qty < 0:
        repo.add_alert(
            session,
            kind="correction_oversold",
            user_id=order.user_id,
            subject=f"order:{order.id}",
            details={"event_id": event_id, "qty": str(d_qty), "held": str(position.qty)},
        )
        d_qty = -position.qty
    position.qty += d_qty
    position.cost_cents += d_cost
    position.realized_cents += to_user + d_cost
    position.updated_at = utcnow()
    order.filled_qty = target_qty
    order.filled_cents = target_cents
    order.filled_avg_price = snap.filled_avg_price
    order.updated_at = utcnow()
    await repo.claim_execution(
        session,
        {
            "execution_id": f"correction:{event_id}",
            "order_id": order.id,
            "user_id": order.user_id,
            "symbol": order.symbol,
            "side": order.side,
            "qty": dq,
            "price": snap.filled_avg_price or Decimal(0),
            "amount_cents": dc,
            "applied_qty": dq,
            "applied_cents": dc,
            "source": "correction",
        },
    )
    if order.settled:
        # the broker moved the difference in the customer's account: journal it back
        # (buy refund / sell proceeds added: to the firm; the other way: to the customer)
        await accounts.queue_journal(
            session=session,
            key=f"order:{order.id}:correct:{event_id}",
            user_id=order.user_id,
            direction="to_firm" if to_user > 0 else "to_customer",
            amount_cents=abs(to_user),
        )
