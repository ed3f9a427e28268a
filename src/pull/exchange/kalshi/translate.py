"""Translation from the exchange's read models to Kalshi's shapes, and paging with filters
the service does not apply."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import book_events
from pull.exchange import service as svc
from pull.exchange.kalshi.schemas import (
    OHLC,
    Event,
    EventPosition,
    Market,
    MarketPosition,
    Order,
    PriceRange,
)
from pull.exchange.kalshi.units import MAX_FILTER_PAGES, dollars, fp, opt_dollars
from pull.exchange.schemas import (
    OHLC as PullOHLC,
)
from pull.exchange.schemas import (
    EventRead,
    MarketRead,
    OrderRead,
    PositionRead,
)
from pull.kit.pagination import MAX_LIMIT

T = TypeVar("T")

# --- translation: exchange -> Kalshi ---------------------------------------------------------


def market_status(m: MarketRead) -> str:
    if m.status == "open":
        return "active"
    if m.status == "paused":
        return "inactive"
    if m.status == "closed" and m.result is not None:
        return "determined"
    return m.status  # initialized, closed, settled


# Kalshi's `status` filter values (and its response statuses) -> the exchange's statuses.
STATUS_FILTER = {
    "unopened": "initialized",
    "initialized": "initialized",
    "open": "open",
    "active": "open",
    "paused": "paused",
    "inactive": "paused",
    "closed": "closed",
    "determined": "closed",
    "settled": "settled",
    "finalized": "settled",
}

PRICE_RANGES = [PriceRange(start="0.0000", end="1.0000", step="0.0100")]


def to_market(
    m: MarketRead, series_ticker: str | None, book: dict[str, dict[str, int]] | None = None
) -> Market:
    """`book`: the published levels, for the sizes at the best bid and ask."""
    expiration = m.expiration_time or m.close_time
    book = book or {"yes": {}, "no": {}}
    bid_size = book["yes"].get(str(m.yes_bid), 0) if m.yes_bid is not None else 0
    ask_size = book["no"].get(str(100 - m.yes_ask), 0) if m.yes_ask is not None else 0
    settlement = {"yes": 100, "no": 0}.get(m.result or "")
    yes_bid = m.yes_bid or 0
    yes_ask = 100 if m.yes_ask is None else m.yes_ask
    no_bid = m.no_bid or 0
    no_ask = 100 if m.no_ask is None else m.no_ask
    last = m.last_price or 0
    return Market(
        ticker=m.ticker,
        event_ticker=m.event_ticker,
        series_ticker=series_ticker,
        title=m.title,
        subtitle=m.subtitle,
        yes_sub_title=m.yes_sub_title,
        no_sub_title=m.no_sub_title,
        open_time=m.open_time,
        close_time=m.close_time,
        expiration_time=expiration,
        expected_expiration_time=m.expiration_time,
        latest_expiration_time=expiration,
        status=market_status(m),
        tick_size=m.tick_size,
        yes_bid=yes_bid,
        yes_bid_dollars=dollars(yes_bid),
        yes_ask=yes_ask,
        yes_ask_dollars=dollars(yes_ask),
        no_bid=no_bid,
        no_bid_dollars=dollars(no_bid),
        no_ask=no_ask,
        no_ask_dollars=dollars(no_ask),
        last_price=last,
        last_price_dollars=dollars(last),
        volume=m.volume,
        volume_fp=fp(m.volume),
        volume_24h=m.volume_24h,
        volume_24h_fp=fp(m.volume_24h),
        open_interest=m.open_interest,
        open_interest_fp=fp(m.open_interest),
        liquidity=m.liquidity,
        liquidity_dollars=dollars(m.liquidity),
        result=m.result if m.result in ("yes", "no") else "",
        category=m.category,
        rules_primary=m.rules_primary,
        rules_secondary=m.rules_secondary,
        settlement_value=settlement,
        settlement_value_dollars=opt_dollars(settlement),
        settlement_ts=m.settled_at,
        price_ranges=PRICE_RANGES,
        taker_fee_bps=m.taker_fee_bps,
        maker_fee_bps=m.maker_fee_bps,
        pull_result=m.result,
        created_time=m.created_time or m.open_time,
        updated_time=m.updated_time or m.open_time,
        yes_bid_size_fp=fp(bid_size),
        yes_ask_size_fp=fp(ask_size),
    )


def event_status(markets: Sequence[MarketRead]) -> str:
    """open while any market may still trade; settled once all are; closed in between."""
    if any(m.status in ("initialized", "open", "paused") for m in markets):
        return "open"
    if markets and all(m.status == "settled" for m in markets):
        return "settled"
    return "closed"


def to_event(
    e: EventRead,
    markets: Sequence[MarketRead] | None,
    *,
    nested: bool,
    books: dict[str, dict[str, dict[str, int]]] | None = None,
) -> Event:
    return Event(
        event_ticker=e.event_ticker,
        series_ticker=e.series_ticker,
        title=e.title,
        sub_title=e.subtitle,
        category=e.category,
        mutually_exclusive=e.mutually_exclusive,
        status=None if markets is None else event_status(markets),
        markets=[to_market(m, e.series_ticker, (books or {}).get(m.ticker)) for m in markets]
        if nested and markets is not None
        else None,
    )


def outcome_side(side: str, action: str) -> Literal["yes", "no"]:
    """The outcome an order or fill is positioned for: buying YES or selling NO is YES."""
    return "yes" if (side == "yes") == (action == "buy") else "no"


def book_side(side: str, action: str) -> Literal["bid", "ask"]:
    """Kalshi's single (YES) book: a YES-positioned order bids, the other asks."""
    return "bid" if outcome_side(side, action) == "yes" else "ask"


def to_order(o: OrderRead) -> Order:
    yes_side = (o.side == "yes") == (o.action == "buy")
    return Order(
        order_id=str(o.order_id),
        user_id=str(o.user_id),
        client_order_id=o.client_order_id or "",
        ticker=o.ticker,
        side=o.side,
        action=o.action,
        outcome_side="yes" if yes_side else "no",
        book_side="bid" if yes_side else "ask",
        type=o.type,
        status=o.status,
        yes_price=o.yes_price,
        no_price=o.no_price,
        yes_price_dollars=dollars(o.yes_price),
        no_price_dollars=dollars(o.no_price),
        count=o.initial_count,
        initial_count=o.initial_count,
        initial_count_fp=fp(o.initial_count),
        fill_count=o.fill_count,
        fill_count_fp=fp(o.fill_count),
        remaining_count=o.remaining_count,
        remaining_count_fp=fp(o.remaining_count),
        taker_fees=o.taker_fees,
        taker_fees_dollars=dollars(o.taker_fees),
        maker_fees=o.maker_fees,
        maker_fees_dollars=dollars(o.maker_fees),
        taker_fill_cost=o.taker_fill_cost,
        taker_fill_cost_dollars=dollars(o.taker_fill_cost),
        maker_fill_cost=o.maker_fill_cost,
        maker_fill_cost_dollars=dollars(o.maker_fill_cost),
        queue_position=o.queue_position,
        expiration_time=o.expiration_time,
        created_time=o.created_time,
        last_update_time=o.last_update_time,
        updated_time=o.last_update_time,
        self_trade_prevention_type=o.self_trade_prevention_type,
        time_in_force=o.time_in_force,
        post_only=o.post_only,
        reduce_only=o.reduce_only,
        buy_max_cost=o.buy_max_cost,
    )


def to_position(p: PositionRead, event_ticker: str) -> MarketPosition:
    return MarketPosition(
        ticker=p.ticker,
        event_ticker=event_ticker,
        position=p.position,
        position_fp=fp(p.position),
        exchange_index=0,
        market_exposure=p.market_exposure,
        market_exposure_dollars=dollars(p.market_exposure),
        realized_pnl=p.realized_pnl,
        realized_pnl_dollars=dollars(p.realized_pnl),
        total_traded=p.total_traded,
        total_traded_dollars=dollars(p.cost_basis),
        fees_paid=p.fees_paid,
        fees_paid_dollars=dollars(p.fees_paid),
        resting_orders_count=p.resting_orders_count,
        resting_order_count=p.resting_orders_count,
        total_cost=p.cost_basis,
        total_cost_dollars=dollars(p.cost_basis),
        last_updated_ts=p.last_updated_ts,
    )


def to_event_positions(
    positions: Sequence[MarketPosition], volume: dict[str, int]
) -> list[EventPosition]:
    by_event: dict[str, list[MarketPosition]] = {}
    for p in positions:
        by_event.setdefault(p.event_ticker, []).append(p)
    out = []
    for event_ticker, ps in by_event.items():
        cost = sum(p.total_cost for p in ps)
        exposure = sum(p.market_exposure for p in ps)
        pnl = sum(p.realized_pnl for p in ps)
        fees = sum(p.fees_paid for p in ps)
        shares = sum(volume.get(p.ticker, 0) for p in ps)
        out.append(
            EventPosition(
                event_ticker=event_ticker,
                total_cost=cost,
                total_cost_dollars=dollars(cost),
                total_cost_shares=shares,
                total_cost_shares_fp=fp(shares),
                event_exposure=exposure,
                event_exposure_dollars=dollars(exposure),
                realized_pnl=pnl,
                realized_pnl_dollars=dollars(pnl),
                fees_paid=fees,
                fees_paid_dollars=dollars(fees),
                resting_order_count=sum(p.resting_orders_count for p in ps),
            )
        )
    return out


def to_ohlc(o: PullOHLC) -> OHLC:
    return OHLC(
        open=o.open,
        high=o.high,
        low=o.low,
        close=o.close,
        open_dollars=opt_dollars(o.open),
        high_dollars=opt_dollars(o.high),
        low_dollars=opt_dollars(o.low),
        close_dollars=opt_dollars(o.close),
    )


def ladder(levels: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The service gives best first; Kalshi lists ascending by price (best last)."""
    return sorted((int(p), int(c)) for p, c in levels)


# --- paging with filters the service does not apply --------------------------------------------


@dataclass
class Collected:
    items: list[Any] = field(default_factory=list)
    cursor: str = ""


async def collect(
    fetch: Callable[[str | None, int], Awaitable[tuple[Sequence[T], str | None]]],
    keep: Callable[[T], bool] | None,
    *,
    cursor: str | None,
    limit: int,
) -> Collected:
    """Read service pages until `limit` items pass `keep` or the list ends. Each read asks for
    only the items still missing, so the service's cursor never skips a kept item."""
    out = Collected()
    pages = 0
    while True:
        rows, nxt = await fetch(cursor, limit - len(out.items))
        out.items.extend(r for r in rows if keep is None or keep(r))
        cursor = nxt
        pages += 1
        if not cursor or len(out.items) >= limit or pages >= MAX_FILTER_PAGES:
            break
    out.cursor = cursor or ""
    return out


@dataclass
class Lookups:
    """Per-request caches of the events and markets a translation needs."""

    session: AsyncSession
    events: dict[str, EventRead] = field(default_factory=dict)
    market_events: dict[str, str] = field(default_factory=dict)

    async def event(self, ticker: str) -> EventRead:
        if ticker not in self.events:
            self.events[ticker] = await svc.get_event(session=self.session, ticker=ticker)
        return self.events[ticker]

    async def series_of(self, markets: Sequence[MarketRead]) -> dict[str, str]:
        missing = [m.event_ticker for m in markets if m.event_ticker not in self.events]
        if missing:
            self.events.update(await svc.get_events(session=self.session, tickers=missing))
        return {
            m.event_ticker: self.events[m.event_ticker].series_ticker
            for m in markets
            if m.event_ticker in self.events
        }

    async def markets_page(self, markets: Sequence[MarketRead]) -> list[Market]:
        series = await self.series_of(markets)
        books = await book_events.read_books(self.session, tickers=[m.ticker for m in markets])
        return [to_market(m, series.get(m.event_ticker), books.get(m.ticker)) for m in markets]

    async def event_tickers(self, tickers: Sequence[str]) -> dict[str, str]:
        missing = sorted({t for t in tickers if t not in self.market_events})
        for i in range(0, len(missing), MAX_LIMIT):
            chunk = missing[i : i + MAX_LIMIT]
            page = await svc.list_markets(session=self.session, tickers=chunk, limit=len(chunk))
            for m in page.items:
                self.market_events[m.ticker] = m.event_ticker
        return {t: self.market_events.get(t, "") for t in tickers}

    async def all_markets(self, *, event_ticker: str) -> list[MarketRead]:
        out: list[MarketRead] = []
        cursor: str | None = None
        while True:
            page = await svc.list_markets(
                session=self.session, event_ticker=event_ticker, cursor=cursor, limit=MAX_LIMIT
            )
            out.extend(page.items)
            cursor = page.cursor
            if not cursor:
                return out


def in_window(moment: dt.datetime, min_ts: int | None, max_ts: int | None) -> bool:
    ts = moment.timestamp()
    return (min_ts is None or ts >= min_ts) and (max_ts is None or ts <= max_ts)
