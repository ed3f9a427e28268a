"""Changes to resting orders: cancel, decrease, amend (which may re-enter the book) and expiry."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import book_events
from pull.exchange import book_repository as book_repo
from pull.exchange import repository as repo
from pull.exchange.engine import (
    Incoming,
    Money,
    PositionState,
    decreased_hold,
    own_price,
)
from pull.exchange.errors import (
    InsufficientPosition,
    InvalidOrder,
    OrderNotFound,
    OrderNotResting,
)
from pull.exchange.models import Order
from pull.exchange.money import release_limit
from pull.exchange.placement import check_open, enter, limit_price
from pull.exchange.schemas import (
    OrderAmend,
    OrderDecrease,
    OrderRead,
)
from pull.exchange.views import book_order, order_read, order_values, position_state
from pull.kit.db import utcnow
from pull.ledger import service as ledger


async def _locked_order(
    session: AsyncSession, *, user_id: uuid.UUID | None, order_id: uuid.UUID
) -> tuple[book_repo.LockedMarket, Order]:
    """The order, re-read after its market is locked (so it cannot change under us)."""
    order = await repo.order_by_id(session, order_id, user_id=user_id)
    if order is None:
        raise OrderNotFound()
    market = await book_repo.lock_market(session, order.ticker)
    assert market is not None
    await session.refresh(order)
    if order.status != "resting":
        raise OrderNotResting(details={"status": order.status})
    return market, order


async def _give_back(
    session: AsyncSession,
    *,
    market: book_repo.LockedMarket,
    order: Order,
    new_remaining: int,
    key: str,
    now: dt.datetime,
) -> int:
    """Shrink a resting order to `new_remaining` (0 = cancel): release hold, sell reservation
    and trading limit. Returns the new hold."""
    cut = order.remaining_count - new_remaining
    if order.action == "buy":
        bo = book_order(order)
        new_hold = decreased_hold(bo, new_remaining, market.maker_fee_bps) if new_remaining else 0
        released = order.hold_remaining - new_hold
        if released:
            await ledger.transfer(
                session=session,
                idempotency_key=key,
                kind="exchange.release",
                legs=[
                    ledger.Leg(ledger.user_account(order.user_id, "held"), -released),
                    ledger.Leg(ledger.user_account(order.user_id, "cash"), released),
                ],
                reference=f"order:{order.id}",
            )
        limit_own = own_price(order.is_bid, order.yes_price)
        await release_limit(
            session,
            order_id=order.id,
            seq=order.seq,
            action="buy",
            give_back=order.limit_consumed - order.maker_fill_cost - new_remaining * limit_own,
        )
        return new_hold
    await book_repo.adjust_sell_reserved(session, order.market_id, order.user_id, -cut)
    return 0


async def cancel_order(
    *,
    session: AsyncSession,
    user_id: uuid.UUID | None,
    order_id: uuid.UUID,
    reason: str = "canceled",
    now: dt.datetime | None = None,
) -> OrderRead:
    """Cancel a resting order (user_id None: any user's, for the system)."""
    now = now or utcnow()
    market, order = await _locked_order(session, user_id=user_id, order_id=order_id)
    await _give_back(
        session,
        market=market,
        order=order,
        new_remaining=0,
        key=f"exchange:cancel:{order.id}:{order.seq}",
        now=now,
    )
    canceled = await repo.cancel_resting(session, order.id, reason=reason, now=now)
    if canceled is None:
        raise OrderNotResting()
    await book_repo.refresh_top(session, market_id=market.id, now=now)
    await session.refresh(order)
    return order_read(order_values(order))


async def decrease_order(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    order_id: uuid.UUID,
    data: OrderDecrease,
    now: dt.datetime | None = None,
) -> OrderRead:
    """Lower a resting order's remaining count; it keeps its place in the queue."""
    now = now or utcnow()
    market, order = await _locked_order(session, user_id=user_id, order_id=order_id)
    if data.reduce_to is not None:
        target = data.reduce_to
    else:
        assert data.reduce_by is not None
        target = max(0, order.remaining_count - data.reduce_by)
    if target >= order.remaining_count:
        raise InvalidOrder(
            "A decrease must lower the remaining count",
            code="INVALID_DECREASE",
            details={"remaining_count": order.remaining_count},
        )
    if target == 0:
        return await cancel_order(
            session=session, user_id=user_id, order_id=order_id, reason="decreased", now=now
        )
    hold = await _give_back(
        session,
        market=market,
        order=order,
        new_remaining=target,
        key=f"exchange:decrease:{order.id}:{order.seq}:{target}",
        now=now,
    )
    await repo.shrink_order(session, order.id, remaining=target, hold=hold, now=now)
    await book_repo.refresh_top(session, market_id=market.id, now=now)
    await session.refresh(order)
    return order_read(order_values(order))


async def amend_order(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    order_id: uuid.UUID,
    data: OrderAmend,
    now: dt.datetime | None = None,
) -> OrderRead:
    """Change a resting order's price and/or total count. A pure size cut keeps the order's
    place in the queue; anything else re-enters the book (and may trade) at the back."""
    now = now or utcnow()
    market, order = await _locked_order(session, user_id=user_id, order_id=order_id)
    check_open(market, now)
    new_yes = limit_price(data, order.side, market=False)
    assert new_yes is not None
    new_remaining = data.count - order.fill_count
    if new_remaining < 1:
        raise InvalidOrder(
            "count is the new total and must exceed the filled count",
            code="INVALID_AMEND",
            details={"fill_count": order.fill_count},
        )
    if new_yes == order.yes_price and new_remaining <= order.remaining_count:
        if new_remaining < order.remaining_count:
            return await decrease_order(
                session=session,
                user_id=user_id,
                order_id=order_id,
                data=OrderDecrease(reduce_to=new_remaining),
                now=now,
            )
        return order_read(order_values(order))
    # re-entry: give everything back, then enter the book again as a new taker
    taker_rows = await book_repo.positions_of(session, market.id, [user_id])
    taker_pos = position_state(taker_rows[user_id]) if user_id in taker_rows else PositionState()
    prior = Money()
    if order.action == "sell":
        taker_pos.sell_reserved -= order.remaining_count
        held = taker_pos.position if order.side == "yes" else -taker_pos.position
        if new_remaining > held - taker_pos.sell_reserved:
            raise InsufficientPosition()
    else:
        prior.cash, prior.held = order.hold_remaining, -order.hold_remaining
        await release_limit(
            session,
            order_id=order.id,
            seq=order.seq,
            action="buy",
            give_back=order.limit_consumed - order.maker_fill_cost,
        )
    incoming = Incoming(
        id=order.id,
        user_id=user_id,
        side=order.side,  # type: ignore[arg-type]
        action=order.action,  # type: ignore[arg-type]
        yes_price=new_yes,
        count=new_remaining,
        seq=market.seq,
        time_in_force="good_till_canceled",
        reduce_only=order.reduce_only,
        self_trade_prevention=order.self_trade_prevention_type,  # type: ignore[arg-type]
        expiration_ts=order.expiration_ts,
        taker_fee_basis=order.taker_fee_basis,
        taker_fees=order.taker_fees,
    )
    base = order_values(order)
    base["initial_count"] = data.count
    values = await enter(
        session,
        market=market,
        incoming=incoming,
        base=base,
        taker_position=taker_pos,
        prior_money=prior,
        now=now,
        reentry=True,
    )
    session.expunge(order)
    return order_read(values)


async def expire_orders(
    *, session: AsyncSession, now: dt.datetime | None = None, limit: int = 500
) -> int:
    """Cancel resting orders whose expiration_ts has passed (the worker's clock calls this)."""
    now = now or utcnow()
    n = 0
    for order_id, ticker in await repo.expired_orders(session, now, limit):
        try:
            async with session.begin_nested():
                gone = await cancel_order(
                    session=session, user_id=None, order_id=order_id, reason="expired", now=now
                )
                await book_events.record(session, ticker=ticker, result=gone)  # live feeds
            n += 1
        except OrderNotResting:
            continue
    return n
