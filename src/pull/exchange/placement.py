"""Order entry: placing an order, one serialized unit of work on its market.

The market row is locked first; validation, the KYC trading limit, matching, ledger transfers,
fills, positions and outbox events all happen in the caller's one transaction, and any error
leaves nothing written.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Hashable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import book_repository as book_repo
from pull.exchange.engine import (
    EngineError,
    Incoming,
    MatchResult,
    Money,
    PositionState,
    crosses,
    is_bid,
    match,
    own_price,
)
from pull.exchange.errors import (
    ClientOrderIdConflict,
    InsufficientPosition,
    InvalidOrder,
    InvalidPrice,
    MarketClosed,
    MarketNotFound,
    MarketPaused,
    PostOnlyWouldCross,
)
from pull.exchange.money import limit_reference, money_transfers, release_limit
from pull.exchange.schemas import (
    OrderAmend,
    OrderCreate,
    OrderRead,
)
from pull.exchange.views import book_order, order_read, order_values, position_state
from pull.kit.db import utcnow
from pull.kyc import service as kyc

# Set in the session's info once a placement has written anything (its trading limit use or
# more): a group commit that runs orders without savepoints (book_commands) knows from it
# whether a refused order left its transaction as it was.
WROTE = "exchange.placement_wrote"


def check_open(market: book_repo.LockedMarket, now: dt.datetime) -> None:
    if market.status == "paused":
        raise MarketPaused()
    if market.status != "open" or market.close_time <= now:
        raise MarketClosed(details={"status": market.status})


def limit_price(data: OrderCreate | OrderAmend, side: str, *, market: bool) -> int | None:
    """The order's limit in YES space from yes_price or no_price."""
    if data.yes_price is not None and data.no_price is not None:
        if data.yes_price + data.no_price != 100:
            raise InvalidPrice("Give yes_price or no_price, not both")
    given = data.yes_price if data.yes_price is not None else data.no_price
    if given is None:
        if market:
            return None
        raise InvalidPrice("A limit order needs yes_price or no_price")
    if not 1 <= given <= 99:
        raise InvalidPrice(details={"price": given})
    yes = given if data.yes_price is not None else 100 - given
    return yes


def side_depth(count: int) -> int:
    """How many orders of the other side to read: enough for `count` contracts (each resting
    order holds at least one) and a few for self-trade and expiry skips."""
    return min(count, 500) + 20


def _top_after(
    market: book_repo.LockedMarket,
    incoming: Incoming,
    rows: Sequence[Any],
    result: MatchResult,
    n: int,
    reentry: bool,
) -> tuple[bool, int | None, int | None] | None:
    """The best YES bid and ask after a match, worked out from what was read; None when the
    book has to be asked (sells shrunk, an amended order left its place, or every order read
    was used up)."""
    if result.shrink_sells or reentry:
        return None
    opposite: int | None = None
    for r in rows:
        upd = result.makers.get(r.id)
        if upd is None or upd.status == "resting":
            opposite = r.yes_price
            break
    else:
        if len(rows) == n:
            return None
    same = market.yes_bid if incoming.is_bid else market.yes_ask
    if result.status == "resting":
        p = incoming.yes_price
        if same is None or (p > same if incoming.is_bid else p < same):
            same = p
    if incoming.is_bid:
        return (True, same, opposite)
    return (True, opposite, same)


async def enter(
    session: AsyncSession,
    *,
    market: book_repo.LockedMarket,
    incoming: Incoming,
    base: dict[str, Any],
    taker_position: PositionState,
    prior_money: Money | None,
    now: dt.datetime,
    rows: Sequence[Any] | None = None,
    n: int | None = None,
    reentry: bool = False,
) -> dict[str, Any]:
    """Match `incoming`, then write and pay for everything it did. `base` holds the order row
    as it was before this entry (fills and costs so far); `rows` the best `n` orders of the
    other side when the caller already read them. Returns the order row written."""
    n = n or side_depth(incoming.count)
    while True:
        if rows is None:
            _pos, rows = await book_repo.opposite_side(
                session,
                market_id=market.id,
                taker_is_bid=incoming.is_bid,
                user_id=incoming.user_id,  # type: ignore[arg-type]
                n=n,
            )
        positions: dict[Hashable, PositionState] = {incoming.user_id: taker_position}
        for r in rows:
            if r.position is not None and r.user_id not in positions:
                positions[r.user_id] = position_state(r)
        book = [book_order(r) for r in rows]
        try:
            result = match(
                incoming,
                book,
                positions,
                taker_fee_bps=market.taker_fee_bps,
                maker_fee_bps=market.maker_fee_bps,
                now=now,
            )
        except EngineError as exc:
            if exc.code == "POST_ONLY_WOULD_CROSS":
                raise PostOnlyWouldCross() from None
            raise InvalidOrder(exc.message, code=exc.code) from None
        if (
            result.candidates_exhausted
            and len(rows) == n
            and all(crosses(incoming.is_bid, incoming.yes_price, r.yes_price) for r in rows)
        ):
            n *= 4  # every order read was used up: read deeper
            rows = None
            continue
        break
    by_id = {r.id: r for r in rows}
    order_id = incoming.id
    user_id = incoming.user_id
    assert isinstance(user_id, uuid.UUID)
    limit_own = own_price(incoming.is_bid, incoming.yes_price)

    # the order row after this entry
    values = dict(base)
    resting = result.status == "resting"
    values.update(
        seq=incoming.seq,
        yes_price=incoming.yes_price,
        status=result.status,
        remaining_count=result.remaining if resting else 0,
        fill_count=base["fill_count"] + result.filled,
        taker_fees=result.taker_fees,
        taker_fee_basis=result.taker_fee_basis,
        taker_fill_cost=base["taker_fill_cost"] + result.taker_fill_cost,
        hold_remaining=result.taker_hold,
        cancel_reason=result.cancel_reason,
        updated_at=now,
    )
    if incoming.action == "buy":
        values["limit_consumed"] = (result.remaining * limit_own if resting else 0) + base[
            "maker_fill_cost"
        ]
        exposure = result.taker_fill_cost + (result.remaining * limit_own if resting else 0)
        if exposure > 0:
            await kyc.consume_limit(
                session=session,
                user_id=user_id,
                action="trade",
                amount_cents=exposure,
                reference=limit_reference(order_id, incoming.seq),
            )
    else:
        values["limit_consumed"] = 0
    session.info[WROTE] = True

    # makers canceled on the way give back their trading limit
    for mid, upd in result.makers.items():
        if upd.status == "canceled" and upd.order.action == "buy":
            r = by_id[mid]
            await release_limit(
                session,
                order_id=mid,
                seq=r.seq,
                action="buy",
                give_back=r.limit_consumed - upd.order.maker_fill_cost,
            )

    money = dict(result.money)
    if prior_money is not None:
        m = money.setdefault(user_id, Money())
        m.cash += prior_money.cash
        m.held += prior_money.held
    await money_transfers(
        session,
        ticker=market.ticker,
        key=f"exchange:order:{order_id}:{incoming.seq}",
        kind="exchange.trade",
        money=money,
        reference=f"order:{order_id}",
    )

    makers = [
        {
            "id": str(mid),
            "remaining_count": upd.order.remaining if upd.status == "resting" else 0,
            "fill_count": upd.order.fill_count,
            "status": upd.status,
            "hold_remaining": upd.order.hold if upd.status == "resting" else 0,
            "maker_fees": upd.order.maker_fees,
            "maker_fee_basis": upd.order.maker_fee_basis,
            "maker_fill_cost": upd.order.maker_fill_cost,
            "cancel_reason": upd.cancel_reason,
        }
        for mid, upd in result.makers.items()
    ]
    trades = [
        {
            "n": i,
            "count": e.count,
            "yes_price": e.yes_price,
            "maker_order_id": str(e.maker_order_id),
            "maker_user_id": str(e.maker_user_id),
            "maker_side": by_id[e.maker_order_id].side,
            "maker_action": by_id[e.maker_order_id].action,
            "maker_fee": e.maker_fee,
            "taker_fee": e.taker_fee,
        }
        for i, e in enumerate(result.executions)
    ]
    positions_out = [
        {
            "user_id": str(u),
            "position": p.position,
            "cost_basis": p.cost_basis,
            "realized_pnl": p.realized_pnl,
            "fees_paid": p.fees_paid,
            "volume": p.volume,
            "sell_reserved": p.sell_reserved,
        }
        for u, p in result.positions.items()
        if u != user_id or p != taker_position or result.filled or resting
    ]
    top = _top_after(market, incoming, rows, result, n, reentry)
    event = None
    if result.executions:
        event = {
            "ticker": market.ticker,
            "order_id": str(order_id),
            "user_id": str(user_id),
            "side": incoming.side,
            "action": incoming.action,
            "fills": [
                {
                    "count": e.count,
                    "yes_price": e.yes_price,
                    "maker_user_id": str(e.maker_user_id),
                    "maker_order_id": str(e.maker_order_id),
                    "taker_fee": e.taker_fee,
                    "maker_fee": e.maker_fee,
                }
                for e in result.executions
            ],
        }
    await book_repo.write_placement(
        session,
        market_id=market.id,
        ticker=market.ticker,
        order={k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in values.items()},
        taker_id=order_id if isinstance(order_id, uuid.UUID) else None,
        taker_user=user_id,
        taker_side=incoming.side,
        taker_action=incoming.action,
        makers=makers,
        trades=trades,
        positions=positions_out,
        now=now,
        yes_bid=top[1] if top else market.yes_bid,
        yes_ask=top[2] if top else market.yes_ask,
        prices=[e.yes_price for e in result.executions],
        volume=result.filled,
        pairs_delta=result.pairs_delta,
        event=event,
    )
    if result.shrink_sells:
        await book_repo.fit_sells(session, market.id, list(result.shrink_sells))
    if top is None:
        market.yes_bid, market.yes_ask = await book_repo.refresh_top(
            session, market_id=market.id, now=now
        )
    else:
        market.yes_bid, market.yes_ask = top[1], top[2]
    return values


def _validate_create(data: OrderCreate, now: dt.datetime) -> tuple[int, dt.datetime | None]:
    is_market = data.type == "market"
    limit = limit_price(data, data.side, market=is_market)
    bid = is_bid(data.side, data.action)
    if limit is None:
        limit = 99 if bid else 1
    if data.post_only and (is_market or data.time_in_force != "good_till_canceled"):
        raise InvalidOrder("post_only orders rest: not with market, IOC or FOK orders")
    if data.buy_max_cost is not None and data.action != "buy":
        raise InvalidOrder("buy_max_cost is for buy orders")
    if data.reduce_only and data.post_only:
        raise InvalidOrder("An order cannot be both post_only and reduce_only")
    expiration = None
    if data.expiration_ts is not None:
        try:
            expiration = dt.datetime.fromtimestamp(data.expiration_ts, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidOrder("expiration_ts is not a valid time") from None
    return limit, expiration


async def create_order(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    data: OrderCreate,
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
    market: book_repo.LockedMarket | None = None,
) -> OrderRead:
    """Place an order: one serialized unit of work on its market. A repeated client_order_id
    (or Idempotency-Key) returns the order it first created. `market`: the order's market as
    already locked in this transaction by the caller (a group commit), `market.seq` the
    sequence number this order takes; the market's top of book is kept up to date in it."""
    now = now or utcnow()
    client_order_id = data.client_order_id or idempotency_key
    if client_order_id is not None and len(client_order_id) > 64:
        raise InvalidOrder("client_order_id (or Idempotency-Key) is at most 64 characters")
    yes_price, expiration = _validate_create(data, now)
    if market is None:
        market = await book_repo.lock_market(session, data.ticker)
    elif market.ticker != data.ticker:  # pragma: no cover - a caller's mistake
        raise ValueError("the locked market is not the order's")
    if market is None:
        raise MarketNotFound()
    if client_order_id is not None:
        existing = await book_repo.order_by_client_id(session, user_id, client_order_id)
        if existing is not None:
            if (existing.ticker, existing.side, existing.action, existing.initial_count) != (
                data.ticker,
                data.side,
                data.action,
                data.count,
            ):
                raise ClientOrderIdConflict()
            return order_read(order_values(existing))
    check_open(market, now)
    depth = side_depth(data.count)
    taker_row, rows = await book_repo.opposite_side(
        session,
        market_id=market.id,
        taker_is_bid=is_bid(data.side, data.action),
        user_id=user_id,
        n=depth,
    )
    taker_pos = position_state(taker_row) if taker_row is not None else PositionState()
    if data.action == "sell":
        held = taker_pos.position if data.side == "yes" else -taker_pos.position
        if data.count > held - taker_pos.sell_reserved:
            raise InsufficientPosition(
                details={"held": max(held, 0), "offered": taker_pos.sell_reserved}
            )
    order_id = uuid.uuid4()
    incoming = Incoming(
        id=order_id,
        user_id=user_id,
        side=data.side,
        action=data.action,
        yes_price=yes_price,
        count=data.count,
        seq=market.seq,
        is_market=data.type == "market",
        time_in_force=data.time_in_force,
        post_only=data.post_only,
        reduce_only=data.reduce_only,
        buy_max_cost=data.buy_max_cost,
        self_trade_prevention=data.self_trade_prevention_type,
        expiration_ts=expiration,
    )
    base = {
        "id": order_id,
        "seq": market.seq,
        "user_id": user_id,
        "market_id": market.id,
        "ticker": market.ticker,
        "side": data.side,
        "action": data.action,
        "is_bid": incoming.is_bid,
        "type": data.type,
        "yes_price": yes_price,
        "status": "pending",
        "time_in_force": data.time_in_force,
        "initial_count": data.count,
        "remaining_count": data.count,
        "fill_count": 0,
        "expiration_ts": expiration,
        "client_order_id": client_order_id,
        "post_only": data.post_only,
        "reduce_only": data.reduce_only,
        "buy_max_cost": data.buy_max_cost,
        "self_trade_prevention_type": data.self_trade_prevention_type,
        "taker_fees": 0,
        "maker_fees": 0,
        "taker_fill_cost": 0,
        "maker_fill_cost": 0,
        "taker_fee_basis": 0,
        "maker_fee_basis": 0,
        "hold_remaining": 0,
        "limit_consumed": 0,
        "cancel_reason": None,
        "created_at": now,
        "updated_at": now,
    }
    values = await enter(
        session,
        market=market,
        incoming=incoming,
        base=base,
        taker_position=taker_pos,
        prior_money=None,
        now=now,
        rows=rows,
        n=depth,
    )
    return order_read(values)
