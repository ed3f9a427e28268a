"""Markets and their lifecycle: series, events and markets, opening, pausing, closing and
resolving (which cancels the book and starts settlement through the outbox).

Book-wide changes lock the market row first, like every book change.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Hashable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import get_settings
from pull.exchange import book_events, read_cache
from pull.exchange import book_repository as book_repo
from pull.exchange import repository as repo
from pull.exchange.engine import (
    Money,
)
from pull.exchange.errors import (
    ConflictOfInterest,
    EventNotFound,
    InvalidOrder,
    InvalidTransition,
    MarketNotFound,
    SeriesNotFound,
    TickerTaken,
)
from pull.exchange.models import Event, Market, Series
from pull.exchange.money import money_transfers, release_limit
from pull.exchange.schemas import (
    EventCreate,
    EventRead,
    MarketCreate,
    MarketRead,
    SeriesCreate,
    SeriesRead,
)
from pull.kit.db import utcnow
from pull.kit.outbox import emit, start_workflow_event
from pull.kit.pagination import Page, clamp_limit, decode_cursor, encode_cursor

SETTLEMENT_WORKFLOW = "SettlementWorkflow"


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
    emit(
        session,
        topic="exchange.event",
        key=event.ticker,
        payload={  # Kalshi's event_lifecycle (pull.exchange.book_events)
            "event_ticker": event.ticker,
            "series_ticker": event.series_ticker,
            "title": event.title,
            "subtitle": event.subtitle,
        },
    )
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
    for m in await market_reads(session, rows):
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
    read_cache.touch(session, market.ticker)
    emit(
        session,
        topic="exchange.market",
        key=market.ticker,
        payload={"ticker": market.ticker, "status": "initialized"},
    )
    return (await market_reads(session, [market]))[0]


async def market_reads(session: AsyncSession, markets: Sequence[Market]) -> list[MarketRead]:
    if not markets:
        return []
    ids = [m.id for m in markets]
    vol = await repo.volume_24h(session, ids)
    liq = await repo.liquidity(session, ids)
    return [market_read(m, vol.get(m.id, 0), liq.get(m.id, 0)) for m in markets]


def market_read(m: Market, volume_24h: int, liquidity: int) -> MarketRead:
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
        created_time=m.created_at,
        updated_time=m.updated_at,
    )


async def get_market(*, session: AsyncSession, ticker: str) -> MarketRead:
    """One market (from read_cache while its commit version is unchanged)."""

    async def load() -> MarketRead:
        market = await repo.market_by_ticker(session, ticker)
        if market is None:
            raise MarketNotFound()
        return (await market_reads(session, [market]))[0]

    return await read_cache.read(session, "market", ticker, None, load)


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
    return Page(items=await market_reads(session, rows), cursor=nxt)


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
    locked = await book_repo.lock_market(session, ticker)
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
        await cancel_all(session, market, reason="market_closed", now=now)
    market.status = target
    await session.flush()
    emit(
        session,
        topic="exchange.market",
        key=ticker,
        payload={"ticker": ticker, "status": target},
    )
    return (await market_reads(session, [market]))[0]


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
    locked = await book_repo.lock_market(session, ticker)
    if locked is None:
        raise MarketNotFound()
    market = await repo.market_by_ticker(session, ticker)
    assert market is not None
    await session.refresh(market)
    if market.result is not None or market.status == "settled":
        raise InvalidTransition("The market is already resolved", details={"result": market.result})
    if actor_id is not None and await book_repo.has_stake(session, market.id, actor_id):
        raise ConflictOfInterest()
    await cancel_all(session, market, reason="market_resolved", now=now)
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
    return (await market_reads(session, [market]))[0]


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
                    await book_events.record(session, ticker=ticker)  # canceled book, live feeds
                n += 1
            except InvalidTransition:
                continue
    return n


async def cancel_all(
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
            await release_limit(
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
    await money_transfers(
        session,
        ticker=market.ticker,
        key=f"exchange:cancel-all:{market.ticker}:{reason}:{market.order_seq}",
        kind="exchange.release",
        money=money,
        reference=f"market:{market.ticker}",
    )
    await session.flush()
    await book_repo.fit_sells(session, market.id, list({o.user_id for o in orders}))
    await book_repo.refresh_top(session, market_id=market.id, now=now)
    book_events.orders_changed(session, [o.id for o in orders])  # per-user order events
    return len(orders)
