"""The exchange service: the public API of the exchange for other modules and API surfaces.

Every function is keyword-only, takes the caller's session and never commits. Book changes
(placing, amending, decreasing, canceling orders; closing and resolving markets) first lock the
market row, so they are serialized per market; everything a placement does - validation, the
KYC trading limit, matching, ledger transfers, fills, positions, outbox events - happens in the
caller's one transaction, and any error leaves nothing written.

Money moves only through the ledger service: a buy's collateral moves from the user's `cash` to
`held` while it rests and from there (or from cash, for a taker) into the market's escrow
account `market_escrow:<ticker>` when it fills; fees go to `fee_revenue:<ticker>`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Hashable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import get_settings
from pull.exchange import repository as repo
from pull.exchange.engine import (
    BookOrder,
    EngineError,
    Incoming,
    MatchResult,
    Money,
    PositionState,
    buy_hold,
    crosses,
    decreased_hold,
    is_bid,
    match,
    own_price,
    yes_price_of,
)
from pull.exchange.errors import (
    ClientOrderIdConflict,
    ConflictOfInterest,
    EventNotFound,
    InsufficientPosition,
    InvalidOrder,
    InvalidPrice,
    InvalidTransition,
    MarketClosed,
    MarketNotFound,
    MarketPaused,
    OrderNotFound,
    OrderNotResting,
    PostOnlyWouldCross,
    SeriesNotFound,
    TickerTaken,
)
from pull.exchange.models import Event, Market, Order, Position, Series
from pull.exchange.schemas import (
    OHLC,
    Candlestick,
    CandlesticksRead,
    EventCreate,
    EventRead,
    FillRead,
    MarketCreate,
    MarketRead,
    OrderAmend,
    OrderbookRead,
    OrderCreate,
    OrderDecrease,
    OrderRead,
    PositionRead,
    SeriesCreate,
    SeriesRead,
    SettleBatch,
    SettlementRead,
    TradeRead,
)
from pull.kit.db import utcnow
from pull.kit.outbox import emit, start_workflow_event
from pull.kit.pagination import Page, clamp_limit, decode_cursor, encode_cursor
from pull.kyc import service as kyc
from pull.ledger import service as ledger

__all__ = [
    "amend_order",
    "cancel_order",
    "close_due_markets",
    "create_event",
    "create_market",
    "create_order",
    "create_series",
    "decrease_order",
    "escrow_account",
    "expire_orders",
    "fee_account",
    "finalize_settlement",
    "get_candlesticks",
    "get_event",
    "get_events",
    "get_market",
    "get_order",
    "get_orderbook",
    "get_series",
    "list_events",
    "list_fills",
    "list_markets",
    "list_orders",
    "list_positions",
    "list_series",
    "list_settlements",
    "list_trades",
    "markets_of_events",
    "open_due_markets",
    "resolve_market",
    "set_market_status",
    "settle_batch",
]

SETTLEMENT_WORKFLOW = "SettlementWorkflow"
USER_LEGS_PER_TRANSFER = 62  # plus the escrow and fee legs: the ledger's 64


def escrow_account(ticker: str) -> ledger.AccountRef:
    """The market's escrow: 100 cents per open YES/NO pair."""
    return ledger.system_account("market_escrow:" + ticker.lower())


def fee_account(ticker: str) -> ledger.AccountRef:
    """The market's fee revenue (a sub-account of fee revenue, per market so that markets
    never wait on one another's row lock)."""
    return ledger.system_account("fee_revenue:" + ticker.lower())


# --- market structure ---------------------------------------------------------------------------


def _series_read(s: Series) -> SeriesRead:
    return SeriesRead.model_validate(s)


def _event_read(e: Event) -> EventRead:
    return EventRead(
        event_ticker=e.ticker,
        series_ticker=e.series_ticker,
        title=e.title,
        subtitle=e.subtitle,
        category=e.category,
        mutually_exclusive=e.mutually_exclusive,
    )


async def create_series(*, session: AsyncSession, data: SeriesCreate) -> SeriesRead:
    if await repo.ticker_taken(session, data.ticker):
        raise TickerTaken()
    series = Series(**data.model_dump())
    session.add(series)
    await session.flush()
    return _series_read(series)


async def get_series(*, session: AsyncSession, ticker: str) -> SeriesRead:
    series = await repo.series_by_ticker(session, ticker)
    if series is None:
        raise SeriesNotFound()
    return _series_read(series)


async def list_series(*, session: AsyncSession) -> list[SeriesRead]:
    return [_series_read(s) for s in await repo.list_series(session)]


async def create_event(*, session: AsyncSession, data: EventCreate) -> EventRead:
    series = await repo.series_by_ticker(session, data.series_ticker)
    if series is None:
        raise SeriesNotFound()
    if await repo.ticker_taken(session, data.ticker):
        raise TickerTaken()
    event = Event(
        ticker=data.ticker,
        series_id=series.id,
        series_ticker=series.ticker,
        title=data.title,
        subtitle=data.subtitle,
        category=data.category or series.category,
        mutually_exclusive=data.mutually_exclusive,
    )
    session.add(event)
    await session.flush()
    return _event_read(event)


async def get_event(*, session: AsyncSession, ticker: str) -> EventRead:
    event = await repo.event_by_ticker(session, ticker)
    if event is None:
        raise EventNotFound()
    return _event_read(event)


async def list_events(
    *,
    session: AsyncSession,
    series_ticker: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[EventRead]:
    n = clamp_limit(limit)
    after = (decode_cursor(cursor) or {}).get("t")
    rows = await repo.list_events(
        session, series_ticker=series_ticker, after=str(after) if after else None, limit=n
    )
    nxt = encode_cursor({"t": rows[-1].ticker}) if len(rows) == n else None
    return Page(items=[_event_read(e) for e in rows], cursor=nxt)


async def get_events(*, session: AsyncSession, tickers: Sequence[str]) -> dict[str, EventRead]:
    """The events of these tickers that exist, in one statement."""
    rows = await repo.events_by_tickers(session, sorted(set(tickers)))
    return {e.ticker: _event_read(e) for e in rows}


async def markets_of_events(
    *, session: AsyncSession, event_tickers: Sequence[str]
) -> dict[str, list[MarketRead]]:
    """Every market of each of these events (a constant number of statements for a page)."""
    out: dict[str, list[MarketRead]] = {t: [] for t in event_tickers}
    rows = await repo.markets_of_events(session, sorted(set(event_tickers)))
    for m in await _market_reads(session, rows):
        out.setdefault(m.event_ticker, []).append(m)
    return out


async def create_market(
    *, session: AsyncSession, data: MarketCreate, now: dt.datetime | None = None
) -> MarketRead:
    event = await repo.event_by_ticker(session, data.event_ticker)
    if event is None:
        raise EventNotFound()
    if await repo.ticker_taken(session, data.ticker):
        raise TickerTaken()
    values = data.model_dump()
    values.pop("event_ticker")
    market = Market(
        **values,
        event_id=event.id,
        event_ticker=event.ticker,
        status="initialized",
    )
    if not market.category:
        market.category = event.category
    session.add(market)
    await session.flush()
    emit(
        session,
        topic="exchange.market",
        key=market.ticker,
        payload={"ticker": market.ticker, "status": "initialized"},
    )
    return (await _market_reads(session, [market]))[0]


async def _market_reads(session: AsyncSession, markets: Sequence[Market]) -> list[MarketRead]:
    if not markets:
        return []
    ids = [m.id for m in markets]
    vol = await repo.volume_24h(session, ids)
    liq = await repo.liquidity(session, ids)
    return [_market_read(m, vol.get(m.id, 0), liq.get(m.id, 0)) for m in markets]


def _market_read(m: Market, volume_24h: int, liquidity: int) -> MarketRead:
    return MarketRead(
        ticker=m.ticker,
        event_ticker=m.event_ticker,
        title=m.title,
        subtitle=m.subtitle,
        yes_sub_title=m.yes_sub_title,
        no_sub_title=m.no_sub_title,
        rules_primary=m.rules_primary,
        rules_secondary=m.rules_secondary,
        category=m.category,
        settlement_source=m.settlement_source,
        status=m.status,
        result=m.result,
        open_time=m.open_time,
        close_time=m.close_time,
        expiration_time=m.expiration_time,
        settled_at=m.settled_at,
        tick_size=m.tick_size,
        taker_fee_bps=m.taker_fee_bps,
        maker_fee_bps=m.maker_fee_bps,
        yes_bid=m.yes_bid,
        yes_ask=m.yes_ask,
        no_bid=None if m.yes_ask is None else 100 - m.yes_ask,
        no_ask=None if m.yes_bid is None else 100 - m.yes_bid,
        last_price=m.last_price,
        volume=m.volume,
        volume_24h=volume_24h,
        open_interest=m.open_interest,
        liquidity=liquidity,
    )


async def get_market(*, session: AsyncSession, ticker: str) -> MarketRead:
    market = await repo.market_by_ticker(session, ticker)
    if market is None:
        raise MarketNotFound()
    return (await _market_reads(session, [market]))[0]


async def list_markets(
    *,
    session: AsyncSession,
    status: str | None = None,
    category: str | None = None,
    event_ticker: str | None = None,
    series_ticker: str | None = None,
    search: str | None = None,
    tickers: Sequence[str] | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[MarketRead]:
    n = clamp_limit(limit)
    after = (decode_cursor(cursor) or {}).get("t")
    rows = await repo.list_markets(
        session,
        status=status,
        category=category,
        event_ticker=event_ticker,
        series_ticker=series_ticker,
        search=search,
        tickers=tickers,
        after=str(after) if after else None,
        limit=n,
    )
    nxt = encode_cursor({"t": rows[-1].ticker}) if len(rows) == n else None
    return Page(items=await _market_reads(session, rows), cursor=nxt)


_TRANSITIONS = {
    "open": ({"initialized", "paused"}, "open"),
    "pause": ({"open"}, "paused"),
    "close": ({"initialized", "open", "paused"}, "closed"),
}


async def set_market_status(
    *, session: AsyncSession, ticker: str, action: str, now: dt.datetime | None = None
) -> MarketRead:
    """open (initialized|paused -> open), pause (open -> paused), close (-> closed: resting
    orders are canceled and their holds released)."""
    now = now or utcnow()
    if action not in _TRANSITIONS:
        raise InvalidTransition(f"Unknown action {action!r}")
    locked = await repo.lock_market(session, ticker)
    if locked is None:
        raise MarketNotFound()
    allowed, target = _TRANSITIONS[action]
    if locked.status not in allowed:
        raise InvalidTransition(
            f"A {locked.status} market cannot {action}",
            details={"status": locked.status, "action": action},
        )
    market = await repo.market_by_ticker(session, ticker)
    assert market is not None
    await session.refresh(market)
    if target == "closed":
        await _cancel_all(session, market, reason="market_closed", now=now)
    market.status = target
    await session.flush()
    emit(
        session,
        topic="exchange.market",
        key=ticker,
        payload={"ticker": ticker, "status": target},
    )
    return (await _market_reads(session, [market]))[0]


async def resolve_market(
    *,
    session: AsyncSession,
    ticker: str,
    result: str,
    now: dt.datetime | None = None,
    settlement_batch_size: int | None = None,
    settlement_task_queue: str | None = None,
    actor_id: uuid.UUID | None = None,
) -> MarketRead:
    """Close the market, cancel its resting orders (releasing their holds), record the result
    and start `SettlementWorkflow` (id `settle-<ticker>`) through the outbox, on
    `settlement_task_queue` (default: the relaying worker's queue). `actor_id` (the resolving
    admin) may hold no position and no resting order in the market (403 CONFLICT_OF_INTEREST)."""
    now = now or utcnow()
    if result not in ("yes", "no", "void"):
        raise InvalidOrder("result is yes, no or void")
    locked = await repo.lock_market(session, ticker)
    if locked is None:
        raise MarketNotFound()
    market = await repo.market_by_ticker(session, ticker)
    assert market is not None
    await session.refresh(market)
    if market.result is not None or market.status == "settled":
        raise InvalidTransition("The market is already resolved", details={"result": market.result})
    if actor_id is not None and await repo.has_stake(session, market.id, actor_id):
        raise ConflictOfInterest()
    await _cancel_all(session, market, reason="market_resolved", now=now)
    market.status = "closed"
    market.result = result
    await session.flush()
    settings = get_settings()
    start_workflow_event(
        session,
        workflow=SETTLEMENT_WORKFLOW,
        workflow_id=f"settle-{ticker}",
        task_queue=settlement_task_queue,
        arg={
            "ticker": ticker,
            "batch_size": settlement_batch_size or settings.exchange_settlement_batch_size,
            "parallelism": settings.exchange_settlement_parallelism,
            "start_to_close_seconds": settings.temporal_activity_start_to_close_timeout,
            "heartbeat_seconds": settings.temporal_activity_heartbeat_timeout,
        },
    )
    emit(
        session,
        topic="exchange.market",
        key=ticker,
        payload={"ticker": ticker, "status": "closed", "result": result},
    )
    return (await _market_reads(session, [market]))[0]


async def open_due_markets(*, session: AsyncSession, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    n = 0
    for ticker in await repo.markets_due(
        session, status="initialized", column="open_time", now=now
    ):
        try:
            async with session.begin_nested():
                await set_market_status(session=session, ticker=ticker, action="open", now=now)
            n += 1
        except InvalidTransition:
            continue
    return n


async def close_due_markets(*, session: AsyncSession, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    n = 0
    for status in ("open", "paused"):
        for ticker in await repo.markets_due(session, status=status, column="close_time", now=now):
            try:
                async with session.begin_nested():
                    await set_market_status(session=session, ticker=ticker, action="close", now=now)
                n += 1
            except InvalidTransition:
                continue
    return n


# --- orders: helpers ----------------------------------------------------------------------------


def _order_values(o: Order) -> dict[str, Any]:
    return {c: getattr(o, c) for c in repo.ORDER_COLUMNS}


def _order_read(v: dict[str, Any], queue_position: int | None = None) -> OrderRead:
    return OrderRead(
        order_id=v["id"],
        user_id=v["user_id"],
        client_order_id=v["client_order_id"],
        ticker=v["ticker"],
        side=v["side"],
        action=v["action"],
        type=v["type"],
        status=v["status"],
        yes_price=v["yes_price"],
        no_price=100 - v["yes_price"],
        time_in_force=v["time_in_force"],
        expiration_time=v["expiration_ts"],
        initial_count=v["initial_count"],
        fill_count=v["fill_count"],
        remaining_count=v["remaining_count"],
        taker_fees=v["taker_fees"],
        maker_fees=v["maker_fees"],
        taker_fill_cost=v["taker_fill_cost"],
        maker_fill_cost=v["maker_fill_cost"],
        post_only=v["post_only"],
        reduce_only=v["reduce_only"],
        buy_max_cost=v["buy_max_cost"],
        self_trade_prevention_type=v["self_trade_prevention_type"],
        queue_position=queue_position,
        cancel_reason=v["cancel_reason"],
        created_time=v["created_at"],
        last_update_time=v["updated_at"],
    )


def _limit_reference(order_id: Any, seq: int) -> str:
    return f"exchange-order:{order_id}:{seq}"


def _position_state(row: Any) -> PositionState:
    return PositionState(
        position=int(row.position),
        sell_reserved=int(row.sell_reserved),
        cost_basis=int(row.cost_basis),
        realized_pnl=int(row.realized_pnl),
        fees_paid=int(row.fees_paid),
        volume=int(row.volume),
    )


def _check_open(market: repo.LockedMarket, now: dt.datetime) -> None:
    if market.status == "paused":
        raise MarketPaused()
    if market.status != "open" or market.close_time <= now:
        raise MarketClosed(details={"status": market.status})


def _limit_price(data: OrderCreate | OrderAmend, side: str, *, market: bool) -> int | None:
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


async def _money_transfers(
    session: AsyncSession,
    *,
    ticker: str,
    key: str,
    kind: str,
    money: dict[Hashable, Money],
    reference: str,
) -> None:
    """Move one placement's (or settlement batch's) money in as few ledger transfers as the
    ledger's leg limit allows: users' non-zero legs are packed, each transfer balanced by its
    own escrow and fee legs."""
    chunks: list[tuple[list[ledger.Leg], int, int]] = []
    legs: list[ledger.Leg] = []
    escrow = fee = 0
    for u, m in money.items():
        assert isinstance(u, uuid.UUID)
        mine = [
            ledger.Leg(ledger.user_account(u, kind_), amount)
            for kind_, amount in (("cash", m.cash), ("held", m.held))
            if amount
        ]
        if not mine and not m.escrow and not m.fee:
            continue
        if len(legs) + len(mine) > USER_LEGS_PER_TRANSFER:
            chunks.append((legs, escrow, fee))
            legs, escrow, fee = [], 0, 0
        legs.extend(mine)
        escrow += m.escrow
        fee += m.fee
    chunks.append((legs, escrow, fee))
    for i, (user_legs, escrow, fee) in enumerate(chunks):
        all_legs = [
            *user_legs,
            ledger.Leg(escrow_account(ticker), escrow),
            ledger.Leg(fee_account(ticker), fee),
        ]
        if not any(leg.amount for leg in all_legs):
            continue
        await ledger.transfer(
            session=session,
            idempotency_key=f"{key}:{i}",
            kind=kind,
            legs=all_legs,
            reference=reference,
        )


async def _release_limit(
    session: AsyncSession, *, order_id: Any, seq: int, action: str, give_back: int
) -> None:
    if action == "buy" and give_back > 0:
        await kyc.release_limit(
            session=session, reference=_limit_reference(order_id, seq), amount_cents=give_back
        )


def _book_order(row: Any) -> BookOrder:
    return BookOrder(
        id=row.id,
        user_id=row.user_id,
        side=row.side,
        action=row.action,
        yes_price=row.yes_price,
        seq=row.seq,
        remaining=row.remaining_count,
        hold=row.hold_remaining,
        reduce_only=row.reduce_only,
        expiration_ts=row.expiration_ts,
        fill_count=row.fill_count,
        maker_fee_basis=row.maker_fee_basis,
        maker_fees=row.maker_fees,
        maker_fill_cost=row.maker_fill_cost,
    )


def _side_depth(count: int) -> int:
    """How many orders of the other side to read: enough for `count` contracts (each resting
    order holds at least one) and a few for self-trade and expiry skips."""
    return min(count, 500) + 20


def _top_after(
    market: repo.LockedMarket,
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


async def _enter(
    session: AsyncSession,
    *,
    market: repo.LockedMarket,
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
    n = n or _side_depth(incoming.count)
    while True:
        if rows is None:
            _pos, rows = await repo.opposite_side(
                session,
                market_id=market.id,
                taker_is_bid=incoming.is_bid,
                user_id=incoming.user_id,  # type: ignore[arg-type]
                n=n,
            )
        positions: dict[Hashable, PositionState] = {incoming.user_id: taker_position}
        for r in rows:
            if r.position is not None and r.user_id not in positions:
                positions[r.user_id] = _position_state(r)
        book = [_book_order(r) for r in rows]
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
                reference=_limit_reference(order_id, incoming.seq),
            )
    else:
        values["limit_consumed"] = 0

    # makers canceled on the way give back their trading limit
    for mid, upd in result.makers.items():
        if upd.status == "canceled" and upd.order.action == "buy":
            r = by_id[mid]
            await _release_limit(
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
    await _money_transfers(
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
    await repo.write_placement(
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
        await repo.fit_sells(session, market.id, list(result.shrink_sells))
    if top is None:
        await repo.refresh_top(session, market_id=market.id, now=now)
    return values


def _validate_create(data: OrderCreate, now: dt.datetime) -> tuple[int, dt.datetime | None]:
    is_market = data.type == "market"
    limit = _limit_price(data, data.side, market=is_market)
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
) -> OrderRead:
    """Place an order: one serialized unit of work on its market. A repeated client_order_id
    (or Idempotency-Key) returns the order it first created."""
    now = now or utcnow()
    client_order_id = data.client_order_id or idempotency_key
    if client_order_id is not None and len(client_order_id) > 64:
        raise InvalidOrder("client_order_id (or Idempotency-Key) is at most 64 characters")
    yes_price, expiration = _validate_create(data, now)
    market = await repo.lock_market(session, data.ticker)
    if market is None:
        raise MarketNotFound()
    if client_order_id is not None:
        existing = await repo.order_by_client_id(session, user_id, client_order_id)
        if existing is not None:
            if (existing.ticker, existing.side, existing.action, existing.initial_count) != (
                data.ticker,
                data.side,
                data.action,
                data.count,
            ):
                raise ClientOrderIdConflict()
            return _order_read(_order_values(existing))
    _check_open(market, now)
    depth = _side_depth(data.count)
    taker_row, rows = await repo.opposite_side(
        session,
        market_id=market.id,
        taker_is_bid=is_bid(data.side, data.action),
        user_id=user_id,
        n=depth,
    )
    taker_pos = _position_state(taker_row) if taker_row is not None else PositionState()
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
    values = await _enter(
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
    return _order_read(values)


async def _locked_order(
    session: AsyncSession, *, user_id: uuid.UUID | None, order_id: uuid.UUID
) -> tuple[repo.LockedMarket, Order]:
    """The order, re-read after its market is locked (so it cannot change under us)."""
    order = await repo.order_by_id(session, order_id, user_id=user_id)
    if order is None:
        raise OrderNotFound()
    market = await repo.lock_market(session, order.ticker)
    assert market is not None
    await session.refresh(order)
    if order.status != "resting":
        raise OrderNotResting(details={"status": order.status})
    return market, order


async def _give_back(
    session: AsyncSession,
    *,
    market: repo.LockedMarket,
    order: Order,
    new_remaining: int,
    key: str,
    now: dt.datetime,
) -> int:
    """Shrink a resting order to `new_remaining` (0 = cancel): release hold, sell reservation
    and trading limit. Returns the new hold."""
    cut = order.remaining_count - new_remaining
    if order.action == "buy":
        bo = _book_order(order)
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
        await _release_limit(
            session,
            order_id=order.id,
            seq=order.seq,
            action="buy",
            give_back=order.limit_consumed - order.maker_fill_cost - new_remaining * limit_own,
        )
        return new_hold
    await repo.adjust_sell_reserved(session, order.market_id, order.user_id, -cut)
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
    await repo.refresh_top(session, market_id=market.id, now=now)
    await session.refresh(order)
    return _order_read(_order_values(order))


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
    await repo.refresh_top(session, market_id=market.id, now=now)
    await session.refresh(order)
    return _order_read(_order_values(order))


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
    _check_open(market, now)
    new_yes = _limit_price(data, order.side, market=False)
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
        return _order_read(_order_values(order))
    # re-entry: give everything back, then enter the book again as a new taker
    taker_rows = await repo.positions_of(session, market.id, [user_id])
    taker_pos = _position_state(taker_rows[user_id]) if user_id in taker_rows else PositionState()
    prior = Money()
    if order.action == "sell":
        taker_pos.sell_reserved -= order.remaining_count
        held = taker_pos.position if order.side == "yes" else -taker_pos.position
        if new_remaining > held - taker_pos.sell_reserved:
            raise InsufficientPosition()
    else:
        prior.cash, prior.held = order.hold_remaining, -order.hold_remaining
        await _release_limit(
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
    base = _order_values(order)
    base["initial_count"] = data.count
    values = await _enter(
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
    return _order_read(values)


async def expire_orders(
    *, session: AsyncSession, now: dt.datetime | None = None, limit: int = 500
) -> int:
    """Cancel resting orders whose expiration_ts has passed (the worker's clock calls this)."""
    now = now or utcnow()
    n = 0
    for order_id, _ticker in await repo.expired_orders(session, now, limit):
        try:
            async with session.begin_nested():
                await cancel_order(
                    session=session, user_id=None, order_id=order_id, reason="expired", now=now
                )
            n += 1
        except OrderNotResting:
            continue
    return n


async def _cancel_all(
    session: AsyncSession, market: Market, *, reason: str, now: dt.datetime
) -> int:
    """Cancel every resting order of a (locked) market, releasing holds, reservations and
    trading limits."""
    orders = list(await repo.resting_orders(session, market.id))
    if not orders:
        return 0
    money: dict[Hashable, Money] = {}
    for o in orders:
        if o.action == "buy":
            if o.hold_remaining:
                m = money.setdefault(o.user_id, Money())
                m.cash += o.hold_remaining
                m.held -= o.hold_remaining
            await _release_limit(
                session,
                order_id=o.id,
                seq=o.seq,
                action="buy",
                give_back=o.limit_consumed - o.maker_fill_cost,
            )
        o.status = "canceled"
        o.remaining_count = 0
        o.hold_remaining = 0
        o.cancel_reason = reason
        o.updated_at = now
    await _money_transfers(
        session,
        ticker=market.ticker,
        key=f"exchange:cancel-all:{market.ticker}:{reason}:{market.order_seq}",
        kind="exchange.release",
        money=money,
        reference=f"market:{market.ticker}",
    )
    await session.flush()
    await repo.fit_sells(session, market.id, list({o.user_id for o in orders}))
    await repo.refresh_top(session, market_id=market.id, now=now)
    return len(orders)


async def get_order(*, session: AsyncSession, user_id: uuid.UUID, order_id: uuid.UUID) -> OrderRead:
    order = await repo.order_by_id(session, order_id, user_id=user_id)
    if order is None:
        raise OrderNotFound()
    qp = await repo.queue_position(session, order) if order.status == "resting" else None
    return _order_read(_order_values(order), qp)


async def list_orders(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    ticker: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[OrderRead]:
    n = clamp_limit(limit)
    c = decode_cursor(cursor)
    before = None
    if c:
        try:
            before = (dt.datetime.fromisoformat(c["t"]), uuid.UUID(c["id"]))
        except (KeyError, ValueError, TypeError):
            raise InvalidOrder("Invalid cursor", code="INVALID_CURSOR") from None
    rows = await repo.list_orders(
        session, user_id=user_id, ticker=ticker, status=status, before=before, limit=n
    )
    nxt = (
        encode_cursor({"t": rows[-1].created_at.isoformat(), "id": str(rows[-1].id)})
        if len(rows) == n
        else None
    )
    return Page(items=[_order_read(_order_values(o)) for o in rows], cursor=nxt)


def _utc(ts: int, name: str) -> dt.datetime:
    """A Unix time from the caller; one no calendar holds is 400, not a 500."""
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidOrder(f"{name} is not a valid time", code="INVALID_TIMESTAMP") from None


def _int_cursor(cursor: str | None, key: str = "id") -> int | None:
    c = decode_cursor(cursor)
    if not c:
        return None
    value = c.get(key)
    if not isinstance(value, int):
        raise InvalidOrder("Invalid cursor", code="INVALID_CURSOR")
    return value


async def list_fills(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    ticker: str | None = None,
    order_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[FillRead]:
    n = clamp_limit(limit)
    rows = await repo.list_fills(
        session,
        user_id=user_id,
        ticker=ticker,
        order_id=order_id,
        before=_int_cursor(cursor),
        limit=n,
    )
    items = [
        FillRead(
            fill_id=f.id,
            trade_id=f.trade_id,
            order_id=f.order_id,
            ticker=f.ticker,
            side=f.side,
            action=f.action,
            count=f.count,
            yes_price=f.yes_price,
            no_price=100 - f.yes_price,
            is_taker=f.is_taker,
            fee=f.fee,
            created_time=f.created_at,
        )
        for f in rows
    ]
    nxt = encode_cursor({"id": rows[-1].id}) if len(rows) == n else None
    return Page(items=items, cursor=nxt)


def _position_read(p: Position, resting: tuple[int, int]) -> PositionRead:
    held = abs(p.position)
    return PositionRead(
        ticker=p.ticker,
        position=p.position,
        average_cost=p.cost_basis // held if held else None,
        cost_basis=p.cost_basis,
        market_exposure=p.cost_basis,
        realized_pnl=p.realized_pnl,
        fees_paid=p.fees_paid,
        total_traded=p.volume,
        resting_orders_count=resting[0],
        resting_order_value=resting[1],
        last_updated_ts=p.updated_at,
    )


async def list_positions(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    ticker: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[PositionRead]:
    n = clamp_limit(limit)
    after = (decode_cursor(cursor) or {}).get("t")
    rows = await repo.list_positions(
        session, user_id=user_id, ticker=ticker, after=str(after) if after else None, limit=n
    )
    resting = await repo.resting_summary(session, user_id, [p.market_id for p in rows])
    items = [_position_read(p, resting.get(p.market_id, (0, 0))) for p in rows]
    nxt = encode_cursor({"t": rows[-1].ticker}) if len(rows) == n else None
    return Page(items=items, cursor=nxt)


async def list_settlements(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[SettlementRead]:
    n = clamp_limit(limit)
    rows = await repo.list_settlements(
        session, user_id=user_id, before=_int_cursor(cursor), limit=n
    )
    items = [
        SettlementRead(
            ticker=s.ticker,
            market_result=s.result,
            yes_count=s.yes_count,
            no_count=s.no_count,
            cost_basis=s.cost_basis,
            revenue=s.revenue,
            settled_time=s.settled_at,
        )
        for s in rows
    ]
    nxt = encode_cursor({"id": rows[-1].id}) if len(rows) == n else None
    return Page(items=items, cursor=nxt)


# --- market data --------------------------------------------------------------------------------


async def _market_id(session: AsyncSession, ticker: str) -> uuid.UUID:
    market = await repo.market_by_ticker(session, ticker)
    if market is None:
        raise MarketNotFound()
    return market.id


async def get_orderbook(
    *, session: AsyncSession, ticker: str, depth: int | None = None
) -> OrderbookRead:
    """YES bids and NO bids, best first (a NO bid at q is a YES ask at 100 - q)."""
    if depth is not None and not 0 <= depth <= 100:
        raise InvalidOrder("depth is 0 (all) to 100", code="INVALID_DEPTH")
    mid = await _market_id(session, ticker)
    yes, no = await repo.book_levels(session, mid, depth or None)
    return OrderbookRead(ticker=ticker, yes=yes, no=no)


async def list_trades(
    *,
    session: AsyncSession,
    ticker: str | None = None,
    min_ts: int | None = None,
    max_ts: int | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[TradeRead]:
    n = clamp_limit(limit)
    rows = await repo.list_trades(
        session,
        ticker=ticker,
        before=_int_cursor(cursor),
        min_ts=_utc(min_ts, "min_ts") if min_ts else None,
        max_ts=_utc(max_ts, "max_ts") if max_ts else None,
        limit=n,
    )
    items = [
        TradeRead(
            trade_id=t.id,
            ticker=t.ticker,
            count=t.count,
            yes_price=t.yes_price,
            no_price=100 - t.yes_price,
            taker_side=t.taker_side,
            created_time=t.created_at,
        )
        for t in rows
    ]
    nxt = encode_cursor({"id": rows[-1].id}) if len(rows) == n else None
    return Page(items=items, cursor=nxt)


PERIODS = (1, 60, 1440)


def _ohlc(values: list[tuple[int | None, int | None, int | None, int | None]]) -> OHLC:
    opens = [v[0] for v in values if v[0] is not None]
    highs = [v[1] for v in values if v[1] is not None]
    lows = [v[2] for v in values if v[2] is not None]
    closes = [v[3] for v in values if v[3] is not None]
    return OHLC(
        open=opens[0] if opens else None,
        high=max(highs) if highs else None,
        low=min(lows) if lows else None,
        close=closes[-1] if closes else None,
    )


async def get_candlesticks(
    *,
    session: AsyncSession,
    ticker: str,
    period_interval: int,
    start_ts: int,
    end_ts: int,
) -> CandlesticksRead:
    """OHLC of trade prices and of the best YES bid/ask per period (1, 60 or 1440 minutes),
    from the market's one-minute candles; periods without any activity are left out."""
    if period_interval not in PERIODS:
        raise InvalidOrder("period_interval is 1, 60 or 1440", code="INVALID_PERIOD")
    if end_ts <= start_ts or end_ts - start_ts > period_interval * 60 * 5000:
        raise InvalidOrder("start_ts must precede end_ts (at most 5000 periods)")
    mid = await _market_id(session, ticker)
    period = period_interval * 60
    first = start_ts - start_ts % period
    rows = await repo.candles(
        session,
        mid,
        _utc(first, "start_ts"),
        _utc(end_ts, "end_ts"),
    )
    buckets: dict[int, list[Any]] = {}
    for c in rows:
        ts = int(c.start_ts.timestamp())
        buckets.setdefault(ts - ts % period, []).append(c)
    out = []
    for start in sorted(buckets):
        cs = buckets[start]
        out.append(
            Candlestick(
                end_period_ts=start + period,
                price=_ohlc([(c.price_open, c.price_high, c.price_low, c.price_close) for c in cs]),
                yes_bid=_ohlc([(c.bid_open, c.bid_high, c.bid_low, c.bid_close) for c in cs]),
                yes_ask=_ohlc([(c.ask_open, c.ask_high, c.ask_low, c.ask_close) for c in cs]),
                volume=sum(c.volume for c in cs),
                open_interest=cs[-1].open_interest,
            )
        )
    return CandlesticksRead(ticker=ticker, period_interval=period_interval, candlesticks=out)


# --- settlement ---------------------------------------------------------------------------------


async def settle_batch(
    *,
    session: AsyncSession,
    ticker: str,
    batch_size: int = 1000,
    after: uuid.UUID | None = None,
    user_range: tuple[uuid.UUID, uuid.UUID] | None = None,
) -> SettleBatch:
    """Pay the next `batch_size` unsettled positions of a resolved market from its escrow and
    write their settlement records, in the caller's transaction. Idempotent: settled positions
    are skipped, and a crash before commit leaves nothing behind."""
    market = await repo.market_by_ticker(session, ticker)
    if market is None:
        raise MarketNotFound()
    if market.result is None:
        raise InvalidTransition("The market has no result yet")
    if market.status == "settled":
        return SettleBatch(settled=0, paid=0, done=True)
    rows = await repo.unsettled_positions(session, market.id, batch_size, after, user_range)
    if not rows:
        return SettleBatch(settled=0, paid=0, done=True)
    records: list[dict[str, Any]] = []
    money: dict[Hashable, Money] = {}
    paid = pot = before = total_cost = 0
    if market.result == "void":
        # Zero-sum against the market's own escrow (100¢ per open pair): each position gets
        # its pro-rata share by cost basis, rounded by cumulative floors in user id order so
        # that the shares add up to the escrow exactly, whatever the batches and lanes.
        pot = 100 * int(market.open_interest)
        before, total_cost = await repo.void_cost_prefix(session, market.id, rows[0][0])
    for row in rows:
        user_id, position, cost_basis = row[0], row[1], row[2]
        yes = max(0, int(position))
        no = max(0, -int(position))
        if market.result == "yes":
            revenue = 100 * yes
        elif market.result == "no":
            revenue = 100 * no
        else:
            upto = before + int(cost_basis)
            revenue = _void_share(pot, before, upto, total_cost)
            before = upto
        paid += revenue
        records.append(
            {
                "user_id": str(user_id),
                "yes_count": yes,
                "no_count": no,
                "cost_basis": int(cost_basis),
                "revenue": revenue,
            }
        )
        if revenue:
            money[user_id] = Money(cash=revenue, escrow=-revenue)
    first, last = rows[0][0], rows[-1][0]
    await _money_transfers(
        session,
        ticker=ticker,
        key=f"exchange:settle:{ticker}:{first}:{last}",
        kind="exchange.settlement",
        money=money,
        reference=f"settlement:{ticker}",
    )
    await repo.write_settlements(
        session, market_id=market.id, ticker=ticker, result=market.result, rows=records
    )
    emit(
        session,
        topic="exchange.settlement",
        key=ticker,
        payload={
            "ticker": ticker,
            "result": market.result,
            "settlements": [{"user_id": r["user_id"], "revenue": r["revenue"]} for r in records],
        },
    )
    return SettleBatch(
        settled=len(rows), paid=paid, done=len(rows) < batch_size, last_user_id=rows[-1][0]
    )


def _void_share(pot: int, before: int, upto: int, total_cost: int) -> int:
    """A voided position's share of `pot`: the cumulative floor of `pot * cost / total cost` up
    to and including it, minus the same up to the previous position. The shares of all
    positions telescope to exactly `pot`."""
    if total_cost <= 0:
        return 0
    return pot * upto // total_cost - pot * before // total_cost


async def finalize_settlement(*, session: AsyncSession, ticker: str) -> MarketRead:
    """Mark a fully paid market settled. Settlement pays out exactly the market's escrow (YES
    or NO: 100¢ per winning contract; void: the escrow shared pro rata), so the escrow is zero
    here; anything else is a broken invariant and is refused, never booked to a house
    account."""
    market = await repo.market_by_ticker(session, ticker, lock=True)
    if market is None:
        raise MarketNotFound()
    if market.status != "settled":
        if await repo.unsettled_positions(session, market.id, 1):
            raise InvalidTransition("Positions remain unsettled")
        residual = await ledger.account_balance(session=session, account=escrow_account(ticker))
        if residual:
            raise InvalidTransition(
                "The market escrow does not balance after settlement",
                details={"escrow": residual},
            )
        market.status = "settled"
        market.settled_at = utcnow()
        market.open_interest = 0
        await session.flush()
        emit(
            session,
            topic="exchange.market",
            key=ticker,
            payload={"ticker": ticker, "status": "settled", "result": market.result},
        )
    return (await _market_reads(session, [market]))[0]


def hold_for_buy(count: int, price: int, maker_fee_bps: int = 0) -> int:
    """What a resting buy of `count` at `price` (own side) holds."""
    return buy_hold(count, price, maker_fee_bps)


__all__ += ["hold_for_buy", "yes_price_of"]
