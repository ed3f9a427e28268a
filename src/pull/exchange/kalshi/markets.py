"""Public Trade API endpoints: exchange, series, events, markets, trades, order books and
candlesticks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import book_events, read_cache
from pull.exchange import service as svc
from pull.exchange.kalshi.auth import Limit, page_limit, public_read
from pull.exchange.kalshi.schemas import (
    Candlestick,
    DailySchedule,
    ExchangeStatus,
    GetEventResponse,
    GetEventsResponse,
    GetExchangeAnnouncementsResponse,
    GetExchangeScheduleResponse,
    GetMarketCandlesticksResponse,
    GetMarketOrderbookResponse,
    GetMarketResponse,
    GetMarketsResponse,
    GetSeriesListResponse,
    GetSeriesResponse,
    GetTradesResponse,
    Orderbook,
    OrderbookFp,
    OrderbookLevel,
    Schedule,
    Series,
    Trade,
    WeeklySchedule,
)
from pull.exchange.kalshi.translate import (
    STATUS_FILTER,
    Lookups,
    collect,
    event_status,
    ladder,
    to_event,
    to_market,
    to_ohlc,
)
from pull.exchange.kalshi.units import DEFAULT_LIMIT, dollars, fp, to_ts
from pull.exchange.read_cache import json_bytes
from pull.exchange.schemas import (
    EventRead,
    MarketRead,
)
from pull.kit.db import SessionDep
from pull.kit.errors import BadRequest, NotFound

# --- public endpoints ---------------------------------------------------------------------------

public = APIRouter(dependencies=[Depends(public_read)])


@public.get("/exchange/status", tags=["exchange"], summary="Exchange and trading status")
async def exchange_status() -> ExchangeStatus:
    return ExchangeStatus(exchange_active=True, trading_active=True)


_ALL_DAY = DailySchedule(open_time="00:00", close_time="24:00")


@public.get("/exchange/schedule", tags=["exchange"], summary="Trading hours (always open)")
async def exchange_schedule() -> GetExchangeScheduleResponse:
    days = {
        d: [_ALL_DAY]
        for d in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    }
    week = WeeklySchedule(
        start_time=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        end_time=dt.datetime(9999, 12, 31, tzinfo=dt.UTC),
        **days,
    )
    return GetExchangeScheduleResponse(
        schedule=Schedule(
            standard_hours=[week],
            maintenance_windows=[],
            **{d: _ALL_DAY for d in days},
        )
    )


@public.get("/exchange/announcements", tags=["exchange"], summary="Exchange announcements")
async def exchange_announcements() -> GetExchangeAnnouncementsResponse:
    return GetExchangeAnnouncementsResponse(announcements=[])


@public.get("/series", tags=["series"], summary="All series")
async def list_series(
    session: SessionDep,
    category: str | None = None,
    tags: Annotated[str | None, Query(description="Comma-separated; any of them")] = None,
) -> GetSeriesListResponse:
    wanted = {t.strip() for t in tags.split(",") if t.strip()} if tags else set()
    rows = await svc.list_series(session=session)
    return GetSeriesListResponse(
        series=[
            Series.model_validate(s.model_dump())
            for s in rows
            if (category is None or s.category == category)
            and (not wanted or wanted.intersection(s.tags))
        ]
    )


@public.get("/series/{series_ticker}", tags=["series"], summary="One series")
async def get_series(series_ticker: str, session: SessionDep) -> GetSeriesResponse:
    s = await svc.get_series(session=session, ticker=series_ticker)
    return GetSeriesResponse(series=Series.model_validate(s.model_dump()))


@public.get("/events", tags=["events"], summary="Events, cursor-paginated")
async def list_events(
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    series_ticker: str | None = None,
    status_filter: Annotated[
        str | None, Query(alias="status", description="open | closed | settled")
    ] = None,
    with_nested_markets: bool = False,
    min_close_ts: int | None = None,
) -> GetEventsResponse:
    if status_filter is not None and status_filter not in ("open", "closed", "settled"):
        raise BadRequest("status is open, closed or settled", code="INVALID_PARAMETERS")
    need_markets = with_nested_markets or status_filter is not None or min_close_ts is not None
    markets: dict[str, list[MarketRead]] = {}

    async def fetch(c: str | None, n: int) -> tuple[Sequence[EventRead], str | None]:
        page = await svc.list_events(
            session=session, series_ticker=series_ticker, cursor=c, limit=n
        )
        if need_markets:  # one read for the whole page's markets
            markets.update(
                await svc.markets_of_events(
                    session=session, event_tickers=[e.event_ticker for e in page.items]
                )
            )
        return page.items, page.cursor

    def keep(e: EventRead) -> bool:
        ms = markets.get(e.event_ticker, [])
        if status_filter is not None and event_status(ms) != status_filter:
            return False
        return min_close_ts is None or any(to_ts(m.close_time) >= min_close_ts for m in ms)

    got = await collect(
        fetch, keep if need_markets else None, cursor=cursor, limit=page_limit(limit)
    )
    books = (
        await book_events.read_books(
            session,
            tickers=[m.ticker for e in got.items for m in markets.get(e.event_ticker, [])],
        )
        if with_nested_markets
        else {}
    )
    return GetEventsResponse(
        events=[
            to_event(
                e,
                markets.get(e.event_ticker) if need_markets else None,
                nested=with_nested_markets,
                books=books,
            )
            for e in got.items
        ],
        cursor=got.cursor,
    )


@public.get("/events/{event_ticker}", tags=["events"], summary="One event and its markets")
async def get_event(
    event_ticker: str, session: SessionDep, with_nested_markets: bool = False
) -> GetEventResponse:
    e = await svc.get_event(session=session, ticker=event_ticker)
    markets = await Lookups(session).all_markets(event_ticker=e.event_ticker)
    books = await book_events.read_books(session, tickers=[m.ticker for m in markets])
    return GetEventResponse(
        event=to_event(e, markets, nested=with_nested_markets, books=books),
        markets=[to_market(m, e.series_ticker, books.get(m.ticker)) for m in markets],
    )


@public.get("/markets", tags=["markets"], summary="Markets, cursor-paginated, with filters")
async def list_markets(
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    event_ticker: str | None = None,
    series_ticker: str | None = None,
    status_filter: Annotated[
        str | None,
        Query(alias="status", description="unopened | open | paused | closed | settled"),
    ] = None,
    tickers: Annotated[str | None, Query(description="Comma-separated market tickers")] = None,
    min_close_ts: int | None = None,
    max_close_ts: int | None = None,
) -> GetMarketsResponse:
    wanted_status: str | None = None
    if status_filter:
        try:
            statuses = {STATUS_FILTER[s.strip()] for s in status_filter.split(",")}
        except KeyError:
            raise BadRequest(
                "status is one of unopened, open, paused, closed, settled",
                code="INVALID_PARAMETERS",
            ) from None
        if len(statuses) > 1:
            raise BadRequest("Only one status filter at a time", code="INVALID_PARAMETERS")
        wanted_status = statuses.pop()
    ticker_list = [t.strip() for t in tickers.split(",") if t.strip()] if tickers else None

    async def fetch(c: str | None, n: int) -> tuple[Sequence[MarketRead], str | None]:
        page = await svc.list_markets(
            session=session,
            status=wanted_status,
            event_ticker=event_ticker,
            series_ticker=series_ticker,
            tickers=ticker_list,
            cursor=c,
            limit=n,
        )
        return page.items, page.cursor

    def keep(m: MarketRead) -> bool:
        close = to_ts(m.close_time)
        return (min_close_ts is None or close >= min_close_ts) and (
            max_close_ts is None or close <= max_close_ts
        )

    filtered = min_close_ts is not None or max_close_ts is not None
    got = await collect(fetch, keep if filtered else None, cursor=cursor, limit=page_limit(limit))
    return GetMarketsResponse(
        markets=await Lookups(session).markets_page(got.items), cursor=got.cursor
    )


@public.get("/markets/trades", tags=["markets"], summary="Public trades, newest first")
async def list_trades(
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    ticker: str | None = None,
    min_ts: int | None = None,
    max_ts: int | None = None,
) -> GetTradesResponse:
    page = await svc.list_trades(
        session=session,
        ticker=ticker,
        min_ts=min_ts,
        max_ts=max_ts,
        cursor=cursor,
        limit=page_limit(limit),
    )
    return GetTradesResponse(
        trades=[
            Trade(
                trade_id=str(t.trade_id),
                ticker=t.ticker,
                count=t.count,
                count_fp=fp(t.count),
                yes_price=t.yes_price,
                no_price=t.no_price,
                yes_price_dollars=dollars(t.yes_price),
                no_price_dollars=dollars(t.no_price),
                price=t.yes_price,
                taker_side=t.taker_side,
                taker_outcome_side=t.taker_side,
                taker_book_side="bid" if t.taker_side == "yes" else "ask",
                created_time=t.created_time,
            )
            for t in page.items
        ],
        cursor=page.cursor or "",
    )


@public.get(
    "/markets/{ticker}", tags=["markets"], summary="One market", response_model=GetMarketResponse
)
async def get_market(ticker: str, request: Request) -> Response:
    async def load(session: AsyncSession) -> bytes:
        m = await svc.get_market(session=session, ticker=ticker)
        answer = GetMarketResponse(market=(await Lookups(session).markets_page([m]))[0])
        return answer.model_dump_json(by_alias=True).encode()

    # serialized once per market version (read_cache): the book state it reads changes only
    # in transactions that lock the market, which move that version
    # in memory, a hit opens no session
    body = await read_cache.serve(request, "kalshi.market.json", ticker, None, load)
    return json_bytes(body)


@public.get(
    "/markets/{ticker}/orderbook",
    tags=["markets"],
    summary="YES and NO bids, ascending by price (best last)",
    response_model=GetMarketOrderbookResponse,
)
async def get_orderbook(
    ticker: str,
    request: Request,
    depth: Annotated[int, Query(ge=0, le=100, description="Levels per side; 0 = all")] = 0,
) -> Response:
    """The book as last published to the live feeds (PULL extension: `X-Pull-Book-Seq` names
    its seq, the one `/trade-api/ws/v2` deltas lead to)."""

    async def load(session: AsyncSession) -> tuple[bytes, int | None]:
        book = await svc.get_orderbook(session=session, ticker=ticker, depth=depth or None)
        yes, no = ladder(book.yes), ladder(book.no)
        state = await book_events.read_book(session, ticker=ticker)
        seq = None
        if state is not None:
            yes = _published(state.levels["yes"], depth)
            no = _published(state.levels["no"], depth)
            seq = state.seq
        answer = GetMarketOrderbookResponse(
            orderbook=Orderbook(
                yes=yes,
                no=no,
                yes_dollars=[(dollars(p), c) for p, c in yes],
                no_dollars=[(dollars(p), c) for p, c in no],
                sdk_yes=[OrderbookLevel(price=p, count=c) for p, c in yes],
                sdk_no=[OrderbookLevel(price=p, count=c) for p, c in no],
            ),
            orderbook_fp=OrderbookFp(
                yes_dollars=[(dollars(p), fp(c)) for p, c in yes],
                no_dollars=[(dollars(p), fp(c)) for p, c in no],
            ),
        )
        return answer.model_dump_json(by_alias=True).encode(), seq

    # serialized once per market version (read_cache), with the seq it was published at
    body, seq = await read_cache.serve(request, "kalshi.orderbook.json", ticker, depth, load)
    headers = {"X-Pull-Book-Seq": str(seq)} if seq is not None else None
    return json_bytes(body, headers)


def _published(levels: dict[str, int], depth: int) -> list[tuple[int, int]]:
    best_first = sorted(((int(p), int(c)) for p, c in levels.items() if c), reverse=True)
    return ladder(best_first[:depth] if depth else best_first)


@public.get(
    "/series/{series_ticker}/markets/{ticker}/candlesticks",
    tags=["markets"],
    summary="OHLC candles of one market (period_interval 1, 60 or 1440 minutes)",
)
async def get_candlesticks(
    series_ticker: str,
    ticker: str,
    session: SessionDep,
    start_ts: int,
    end_ts: int,
    period_interval: Annotated[int, Query(description="1, 60 or 1440 minutes")],
) -> GetMarketCandlesticksResponse:
    market = await svc.get_market(session=session, ticker=ticker)
    event = await svc.get_event(session=session, ticker=market.event_ticker)
    if event.series_ticker != series_ticker:
        raise NotFound("Market not found in this series", code="MARKET_NOT_FOUND")
    data = await svc.get_candlesticks(
        session=session,
        ticker=ticker,
        period_interval=period_interval,
        start_ts=start_ts,
        end_ts=end_ts,
    )
    period = data.period_interval * 60
    return GetMarketCandlesticksResponse(
        ticker=data.ticker,
        candlesticks=[
            Candlestick(
                end_period_ts=c.end_period_ts,
                price=to_ohlc(c.price),
                yes_bid=to_ohlc(c.yes_bid),
                yes_ask=to_ohlc(c.yes_ask),
                volume=c.volume,
                volume_fp=fp(c.volume),
                open_interest=c.open_interest,
                open_interest_fp=fp(c.open_interest),
                start_ts=c.end_period_ts - period,
                end_ts=c.end_period_ts,
                open=c.price.open,
                high=c.price.high,
                low=c.price.low,
                close=c.price.close,
            )
            for c in data.candlesticks
        ],
    )
