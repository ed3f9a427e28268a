"""Public market data: the order book, trades and candlesticks (read-only)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import read_cache
from pull.exchange import repository as repo
from pull.exchange.errors import (
    InvalidOrder,
    MarketNotFound,
)
from pull.exchange.schemas import (
    OHLC,
    Candlestick,
    CandlesticksRead,
    OrderbookRead,
    TradeRead,
)
from pull.exchange.views import int_cursor, unix_time
from pull.kit.pagination import Page, clamp_limit, encode_cursor


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

    async def load() -> OrderbookRead:
        mid = await _market_id(session, ticker)
        yes, no = await repo.book_levels(session, mid, depth or None)
        return OrderbookRead(ticker=ticker, yes=yes, no=no)

    return await read_cache.read(session, "orderbook", ticker, depth or None, load)


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
        before=int_cursor(cursor),
        min_ts=unix_time(min_ts, "min_ts") if min_ts else None,
        max_ts=unix_time(max_ts, "max_ts") if max_ts else None,
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
        unix_time(first, "start_ts"),
        unix_time(end_ts, "end_ts"),
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
