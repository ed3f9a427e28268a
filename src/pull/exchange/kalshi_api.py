"""Kalshi-compatible Trade API v2 under `/trade-api/v2`: a second, public surface over the same
exchange, so that bots written against Kalshi (and Kalshi's own `kalshi-python` SDK) trade on
PULL by changing one URL.

This layer only translates: paths, query parameters, field names, units (cents next to
`*_dollars` strings, counts next to `*_fp` strings), enums, cursors and the error shape
`{"error": {"code", "message", "details"}}` are Kalshi's; every rule is the exchange service's.
It is its own ASGI sub-application (own error handlers, own OpenAPI at
`/trade-api/v2/openapi.json`, docs at `/trade-api/v2/docs`) sharing the parent app's state
(database, Redis, rate limiter). See docs/kalshi-compatibility.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar

import anyio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from pull.exchange import book_commands
from pull.exchange import service as svc
from pull.exchange.kalshi_schemas import (
    OHLC,
    AmendOrderRequest,
    AmendOrderResponse,
    ApiKey,
    BatchCancelItem,
    BatchCancelOrdersRequest,
    BatchCancelOrdersResponse,
    BatchCreateItem,
    BatchCreateOrdersRequest,
    BatchCreateOrdersResponse,
    BatchItemError,
    CancelOrderResponse,
    Candlestick,
    CreateApiKeyRequest,
    CreateApiKeyResponse,
    CreateOrderRequest,
    CreateOrderResponse,
    DailySchedule,
    DecreaseOrderRequest,
    DecreaseOrderResponse,
    ErrorResponse,
    Event,
    EventPosition,
    ExchangeStatus,
    Fill,
    GenerateApiKeyRequest,
    GenerateApiKeyResponse,
    GetApiKeysResponse,
    GetBalanceResponse,
    GetEventResponse,
    GetEventsResponse,
    GetExchangeAnnouncementsResponse,
    GetExchangeScheduleResponse,
    GetFillsResponse,
    GetMarketCandlesticksResponse,
    GetMarketOrderbookResponse,
    GetMarketResponse,
    GetMarketsResponse,
    GetOrderQueuePositionResponse,
    GetOrderResponse,
    GetOrdersResponse,
    GetPositionsResponse,
    GetSeriesListResponse,
    GetSeriesResponse,
    GetSettlementsResponse,
    GetTotalRestingOrderValueResponse,
    GetTradesResponse,
    KalshiError,
    Market,
    MarketPosition,
    Order,
    Orderbook,
    OrderbookFp,
    OrderbookLevel,
    PriceRange,
    Schedule,
    Series,
    Settlement,
    Trade,
    WeeklySchedule,
)
from pull.exchange.schemas import (
    OHLC as PullOHLC,
)
from pull.exchange.schemas import (
    EventRead,
    MarketRead,
    OrderAmend,
    OrderCreate,
    OrderDecrease,
    OrderRead,
    PositionRead,
)
from pull.identity import service as identity
from pull.identity.deps import request_meta, signed_request_user
from pull.identity.errors import must_persist
from pull.identity.schemas import ApiKeyCreate, AuthUser
from pull.kit.db import SessionDep
from pull.kit.errors import AppError, BadRequest, NotFound, code_for_status
from pull.kit.pagination import MAX_LIMIT
from pull.kit.ratelimit import OnRedisDown, RateClass, RateLimiter, apply_headers, client_ip
from pull.kit.text import reject_unsafe_text
from pull.ledger import service as ledger

log = logging.getLogger("pull.kalshi")

PREFIX = "/trade-api/v2"
DEFAULT_LIMIT = 100
# Kalshi counts each write as one transaction and each cancel in a batch as 0.2: the write
# tier is kept in fifths of a transaction (see pull.kit.ratelimit.LIMITS).
WRITE_COST = 5
BATCH_CANCEL_COST = 1
# How many service pages one response may read when a filter is applied on top of them.
MAX_FILTER_PAGES = 20

T = TypeVar("T")


# --- units ------------------------------------------------------------------------------------


def dollars(cents: int) -> str:
    """Cents as Kalshi's fixed-point dollar string: 56 -> "0.5600", -1234 -> "-12.3400"."""
    sign = "-" if cents < 0 else ""
    a = abs(cents)
    return f"{sign}{a // 100}.{a % 100:02d}00"


def opt_dollars(cents: int | None) -> str | None:
    return None if cents is None else dollars(cents)


def fp(count: int) -> str:
    """A whole contract count as Kalshi's fixed-point count string: 10 -> "10.00"."""
    return f"{count}.00"


def _decimal(value: str, name: str) -> Decimal:
    try:
        d = Decimal(value.strip())
    except (InvalidOperation, AttributeError):
        raise BadRequest(f"{name} is not a decimal number", code="INVALID_PARAMETERS") from None
    if not d.is_finite():
        raise BadRequest(f"{name} is not a decimal number", code="INVALID_PARAMETERS")
    return d


def parse_dollars(value: str, name: str) -> int:
    """ "0.56" -> 56 cents; PULL prices are whole cents."""
    cents = _decimal(value, name) * 100
    if cents != cents.to_integral_value():
        raise BadRequest(f"{name} must be a whole number of cents", code="INVALID_PRICE")
    return int(cents)


def parse_fp(value: str, name: str) -> int:
    """ "10.00" -> 10; PULL trades whole contracts."""
    d = _decimal(value, name)
    if d != d.to_integral_value():
        raise BadRequest(
            f"{name}: PULL trades whole contracts only", code="FRACTIONAL_NOT_SUPPORTED"
        )
    return int(d)


def _one_of(cents: int | None, dollars_value: str | None, name: str) -> int | None:
    """A price or count given as an integer, as a fixed-point string, or both (must agree)."""
    parsed = (
        None
        if dollars_value is None
        else (parse_fp if name.startswith(("count", "reduce")) else parse_dollars)(
            dollars_value, name + ("_fp" if name.startswith(("count", "reduce")) else "_dollars")
        )
    )
    if cents is not None and parsed is not None and cents != parsed:
        raise BadRequest(f"{name} and its fixed-point form disagree", code="INVALID_PARAMETERS")
    return cents if cents is not None else parsed


def _ts(moment: dt.datetime) -> int:
    return int(moment.timestamp())


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


def to_market(m: MarketRead, series_ticker: str | None) -> Market:
    expiration = m.expiration_time or m.close_time
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
    )


def event_status(markets: Sequence[MarketRead]) -> str:
    """open while any market may still trade; settled once all are; closed in between."""
    if any(m.status in ("initialized", "open", "paused") for m in markets):
        return "open"
    if markets and all(m.status == "settled" for m in markets):
        return "settled"
    return "closed"


def to_event(e: EventRead, markets: Sequence[MarketRead] | None, *, nested: bool) -> Event:
    return Event(
        event_ticker=e.event_ticker,
        series_ticker=e.series_ticker,
        title=e.title,
        sub_title=e.subtitle,
        category=e.category,
        mutually_exclusive=e.mutually_exclusive,
        status=None if markets is None else event_status(markets),
        markets=[to_market(m, e.series_ticker) for m in markets]
        if nested and markets is not None
        else None,
    )


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


# --- errors -----------------------------------------------------------------------------------


def _details(value: Any) -> dict[str, Any] | None:
    """Kalshi's SDK reads `details` as an object: lists and scalars are wrapped."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {"errors": value}
    return {"value": value}


def kalshi_status(status_code: int) -> int:
    # Kalshi answers malformed or invalid input with 400; PULL's 422 becomes 400 here.
    return 400 if status_code == 422 else status_code


def kalshi_error(
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(
        error=KalshiError(code=code, message=message, details=_details(details))
    ).model_dump()
    return JSONResponse(body, status_code=kalshi_status(status_code), headers=headers)


def batch_error(exc: AppError) -> BatchItemError:
    inner = KalshiError(code=exc.code, message=exc.message, details=_details(exc.details))
    return BatchItemError(
        code=inner.code, message=inner.message, details=inner.details, error=inner
    )


def _validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "loc": list(err.get("loc", ())),
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in errors
    ]


def install_error_handlers(app: FastAPI) -> None:
    async def app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return kalshi_error(exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else code_for_status(exc.status_code)
        headers = dict(exc.headers) if exc.headers else None
        return kalshi_error(
            exc.status_code, code_for_status(exc.status_code), message, None, headers
        )

    async def request_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = _validation_details(exc.errors())
        return kalshi_error(400, "INVALID_PARAMETERS", "Invalid request", details)

    async def model_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ValidationError)
        details = _validation_details(exc.errors(include_url=False))
        return kalshi_error(400, "INVALID_PARAMETERS", "Invalid request", details)

    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        rid = request.scope.get("state", {}).get("request_id")
        log.exception("unhandled error", extra={"request_id": rid})
        return kalshi_error(500, "INTERNAL_ERROR", "Internal server error")

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, request_validation)
    app.add_exception_handler(ValidationError, model_validation)
    app.add_exception_handler(Exception, unhandled)


# --- authentication and rate limits ------------------------------------------------------------


async def _hit(
    request: Request,
    response: Response,
    cls: RateClass,
    identity_key: str,
    *,
    cost: int,
    on_redis_down: OnRedisDown,
) -> None:
    limiter: RateLimiter = request.app.state.rate_limiter
    if not limiter.enabled:
        return
    state = await limiter.hit(cls, identity_key, on_redis_down=on_redis_down, cost=cost)
    apply_headers(response, state)


async def public_read(request: Request, response: Response) -> None:
    """Kalshi's read tier, per client IP for unsigned market data."""
    await _hit(
        request,
        response,
        RateClass.kalshi_read,
        f"ip:{client_ip(request)}",
        cost=1,
        on_redis_down=OnRedisDown.fail_open,
    )


Signed = Annotated[AuthUser, Depends(signed_request_user)]


async def signed_read(request: Request, response: Response, user: Signed) -> AuthUser:
    """A signed read: Kalshi's read tier, per user."""
    await _hit(
        request,
        response,
        RateClass.kalshi_read,
        f"user:{user.id}",
        cost=1,
        on_redis_down=OnRedisDown.fail_open,
    )
    return user


async def charge_write(request: Request, response: Response, user: AuthUser, cost: int) -> None:
    """Kalshi's write tier, per user, in fifths of a transaction; fails closed. (Which
    writes a restricted account may make is the book commands' rule.)"""
    await _hit(
        request,
        response,
        RateClass.kalshi_write,
        f"user:{user.id}",
        cost=cost,
        on_redis_down=OnRedisDown.fail_closed,
    )


Reader = Annotated[AuthUser, Depends(signed_read)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="PULL extension: optional key; a retry with it returns the first result",
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size (PULL serves at most 200)")]


def _limit(limit: int | None) -> int:
    return min(limit or DEFAULT_LIMIT, MAX_LIMIT)


def _order_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("Order not found", code="ORDER_NOT_FOUND") from None


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
        return [to_market(m, series.get(m.event_ticker)) for m in markets]

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


def _in_window(moment: dt.datetime, min_ts: int | None, max_ts: int | None) -> bool:
    ts = moment.timestamp()
    return (min_ts is None or ts >= min_ts) and (max_ts is None or ts <= max_ts)


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
        return min_close_ts is None or any(_ts(m.close_time) >= min_close_ts for m in ms)

    got = await collect(fetch, keep if need_markets else None, cursor=cursor, limit=_limit(limit))
    return GetEventsResponse(
        events=[
            to_event(
                e, markets.get(e.event_ticker) if need_markets else None, nested=with_nested_markets
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
    return GetEventResponse(
        event=to_event(e, markets, nested=with_nested_markets),
        markets=[to_market(m, e.series_ticker) for m in markets],
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
        close = _ts(m.close_time)
        return (min_close_ts is None or close >= min_close_ts) and (
            max_close_ts is None or close <= max_close_ts
        )

    filtered = min_close_ts is not None or max_close_ts is not None
    got = await collect(fetch, keep if filtered else None, cursor=cursor, limit=_limit(limit))
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
        limit=_limit(limit),
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
                created_time=t.created_time,
            )
            for t in page.items
        ],
        cursor=page.cursor or "",
    )


@public.get("/markets/{ticker}", tags=["markets"], summary="One market")
async def get_market(ticker: str, session: SessionDep) -> GetMarketResponse:
    m = await svc.get_market(session=session, ticker=ticker)
    return GetMarketResponse(market=(await Lookups(session).markets_page([m]))[0])


@public.get(
    "/markets/{ticker}/orderbook",
    tags=["markets"],
    summary="YES and NO bids, ascending by price (best last)",
)
async def get_orderbook(
    ticker: str,
    session: SessionDep,
    depth: Annotated[int, Query(ge=0, le=100, description="Levels per side; 0 = all")] = 0,
) -> GetMarketOrderbookResponse:
    book = await svc.get_orderbook(session=session, ticker=ticker, depth=depth or None)
    yes, no = ladder(book.yes), ladder(book.no)
    return GetMarketOrderbookResponse(
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


# --- signed portfolio endpoints --------------------------------------------------------------

portfolio = APIRouter(prefix="/portfolio", tags=["portfolio"])


@portfolio.get("/balance", summary="Cash available to trade, in cents")
async def get_balance(user: Reader, session: SessionDep) -> GetBalanceResponse:
    balance = await ledger.get_balance(session=session, user_id=user.id)
    exposure = 0
    cursor: str | None = None
    while True:
        page = await svc.list_positions(
            session=session, user_id=user.id, cursor=cursor, limit=MAX_LIMIT
        )
        exposure += sum(p.market_exposure for p in page.items)
        cursor = page.cursor
        if not cursor:
            break
    return GetBalanceResponse(
        balance=balance.available, portfolio_value=exposure, updated_ts=int(time.time())
    )


@portfolio.get("/positions", summary="Market and event positions")
async def get_positions(
    user: Reader,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    ticker: str | None = None,
    event_ticker: str | None = None,
    count_filter: Annotated[
        str | None, Query(description="Comma-separated: position, total_traded")
    ] = None,
) -> GetPositionsResponse:
    lookups = Lookups(session)
    wanted = {f.strip() for f in count_filter.split(",") if f.strip()} if count_filter else set()
    if not wanted <= {"position", "total_traded"}:
        raise BadRequest("count_filter takes position and total_traded", code="INVALID_PARAMETERS")

    async def fetch(c: str | None, n: int) -> tuple[Sequence[PositionRead], str | None]:
        page = await svc.list_positions(
            session=session, user_id=user.id, ticker=ticker, cursor=c, limit=n
        )
        await lookups.event_tickers([p.ticker for p in page.items])
        return page.items, page.cursor

    def keep(p: PositionRead) -> bool:
        if event_ticker is not None and lookups.market_events.get(p.ticker) != event_ticker:
            return False
        if wanted:
            return ("position" in wanted and p.position != 0) or (
                "total_traded" in wanted and p.total_traded != 0
            )
        return True

    filtered = event_ticker is not None or bool(wanted)
    got = await collect(fetch, keep if filtered else None, cursor=cursor, limit=_limit(limit))
    rows: list[PositionRead] = got.items
    market_positions = [to_position(p, lookups.market_events.get(p.ticker, "")) for p in rows]
    volume = {p.ticker: p.total_traded for p in rows}
    return GetPositionsResponse(
        market_positions=market_positions,
        event_positions=to_event_positions(market_positions, volume),
        positions=market_positions,
        cursor=got.cursor,
    )


@portfolio.get("/orders", summary="The caller's orders, newest first")
async def get_orders(
    user: Reader,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    ticker: str | None = None,
    event_ticker: str | None = None,
    min_ts: int | None = None,
    max_ts: int | None = None,
    status_filter: Annotated[
        str | None, Query(alias="status", description="resting | canceled | executed")
    ] = None,
) -> GetOrdersResponse:
    if status_filter is not None and status_filter not in (
        "resting",
        "canceled",
        "executed",
        "pending",
    ):
        raise BadRequest("status is resting, canceled or executed", code="INVALID_PARAMETERS")
    lookups = Lookups(session)

    async def fetch(c: str | None, n: int) -> tuple[Sequence[OrderRead], str | None]:
        page = await svc.list_orders(
            session=session, user_id=user.id, ticker=ticker, status=status_filter, cursor=c, limit=n
        )
        if event_ticker is not None:
            await lookups.event_tickers([o.ticker for o in page.items])
        return page.items, page.cursor

    def keep(o: OrderRead) -> bool:
        if event_ticker is not None and lookups.market_events.get(o.ticker) != event_ticker:
            return False
        return _in_window(o.created_time, min_ts, max_ts)

    filtered = event_ticker is not None or min_ts is not None or max_ts is not None
    got = await collect(fetch, keep if filtered else None, cursor=cursor, limit=_limit(limit))
    return GetOrdersResponse(orders=[to_order(o) for o in got.items], cursor=got.cursor)


def to_order_create(body: CreateOrderRequest) -> OrderCreate:
    if body.order_group_id is not None:
        raise BadRequest("PULL has no order groups", code="ORDER_GROUPS_NOT_SUPPORTED")
    if body.cancel_order_on_pause:
        raise BadRequest(
            "cancel_order_on_pause is not supported", code="CANCEL_ON_PAUSE_NOT_SUPPORTED"
        )
    count = _one_of(body.count, body.count_fp, "count")
    if count is None:
        raise BadRequest("count (or count_fp) is required", code="INVALID_PARAMETERS")
    values: dict[str, Any] = {
        "ticker": body.ticker,
        "side": body.side,
        "action": body.action,
        "count": count,
        "type": body.type,
        "yes_price": _one_of(body.yes_price, body.yes_price_dollars, "yes_price"),
        "no_price": _one_of(body.no_price, body.no_price_dollars, "no_price"),
        "expiration_ts": body.expiration_ts,
        "client_order_id": body.client_order_id,
        "post_only": body.post_only,
        "reduce_only": body.reduce_only or body.sell_position_floor == 0,
        "buy_max_cost": body.buy_max_cost,
    }
    if body.time_in_force is not None:
        values["time_in_force"] = body.time_in_force
    if body.self_trade_prevention_type is not None:
        values["self_trade_prevention_type"] = body.self_trade_prevention_type
    return OrderCreate.model_validate(values)


@portfolio.post(
    "/orders", status_code=status.HTTP_201_CREATED, summary="Place an order (write tier: 1)"
)
async def create_order(
    body: CreateOrderRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
) -> CreateOrderResponse:
    data = to_order_create(body)
    await charge_write(request, response, user, WRITE_COST)
    placed = await book_commands.place(session=session, user=user, data=data)
    if placed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return CreateOrderResponse(order=to_order(placed.order))


@portfolio.post(
    "/orders/batched",
    summary="Place up to 20 orders (write tier: 1 each); HTTP 200 as SDK 2.1.4 expects",
)
async def batch_create_orders(
    body: BatchCreateOrdersRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
) -> BatchCreateOrdersResponse:
    orders = [to_order_create(o) for o in body.orders]
    await charge_write(request, response, user, WRITE_COST * len(orders))
    results = await book_commands.place_batch(session=session, user=user, orders=orders)
    items = []
    for data, r in zip(orders, results, strict=True):
        err = None
        if r.error is not None:
            err = batch_error(AppError(r.error.message, code=r.error.code, details=r.error.details))
        items.append(
            BatchCreateItem(
                order=None if r.order is None else to_order(r.order),
                error=err,
                client_order_id=r.client_order_id or data.client_order_id,
            )
        )
    return BatchCreateOrdersResponse(orders=items, responses=items)


@portfolio.delete("/orders/batched", summary="Cancel up to 20 orders (write tier: 0.2 each)")
async def batch_cancel_orders(
    body: BatchCancelOrdersRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
) -> BatchCancelOrdersResponse:
    raw = [*(body.ids or []), *(body.order_ids or []), *(o.order_id for o in body.orders or [])]
    if not 1 <= len(raw) <= 20:
        raise BadRequest("Give 1 to 20 order ids", code="INVALID_PARAMETERS")
    await charge_write(request, response, user, BATCH_CANCEL_COST * len(raw))
    ids: list[uuid.UUID] = []
    unknown: dict[int, str] = {}
    for i, given in enumerate(raw):
        try:
            ids.append(uuid.UUID(given))
        except ValueError:
            unknown[i] = given
    results = iter(await book_commands.cancel_batch(session=session, user=user, order_ids=ids))
    items: list[BatchCancelItem] = []
    for i, r_id in enumerate(raw):
        if i in unknown:
            missing = NotFound("Order not found", code="ORDER_NOT_FOUND")
            items.append(
                BatchCancelItem(
                    order_id=r_id, reduced_by=0, reduced_by_fp=fp(0), error=batch_error(missing)
                )
            )
            continue
        r = next(results)
        if r.error is not None or r.order is None:
            e = r.error
            exc = AppError(
                e.message if e else "Order not canceled",
                code=e.code if e else "CANCEL_FAILED",
                details=e.details if e else None,
            )
            items.append(
                BatchCancelItem(
                    order_id=r_id, reduced_by=0, reduced_by_fp=fp(0), error=batch_error(exc)
                )
            )
            continue
        items.append(
            BatchCancelItem(
                order_id=r_id,
                order=to_order(r.order),
                reduced_by=r.reduced_by,
                reduced_by_fp=fp(r.reduced_by),
            )
        )
    return BatchCancelOrdersResponse(orders=items, responses=items)


@portfolio.get("/orders/{order_id}", summary="One of the caller's orders")
async def get_order(order_id: str, user: Reader, session: SessionDep) -> GetOrderResponse:
    order = await svc.get_order(session=session, user_id=user.id, order_id=_order_id(order_id))
    return GetOrderResponse(order=to_order(order))


@portfolio.get(
    "/orders/{order_id}/queue_position",
    summary="Contracts resting ahead of this order at its price",
)
async def get_order_queue_position(
    order_id: str, user: Reader, session: SessionDep
) -> GetOrderQueuePositionResponse:
    order = await svc.get_order(session=session, user_id=user.id, order_id=_order_id(order_id))
    return GetOrderQueuePositionResponse(queue_position=order.queue_position or 0)


@portfolio.delete("/orders/{order_id}", summary="Cancel an order (write tier: 1)")
async def cancel_order(
    order_id: str, request: Request, response: Response, user: Signed, session: SessionDep
) -> CancelOrderResponse:
    oid = _order_id(order_id)
    await charge_write(request, response, user, WRITE_COST)
    done = await book_commands.cancel(session=session, user=user, order_id=oid)
    assert done.order is not None
    reduced = done.reduced_by
    return CancelOrderResponse(
        order=to_order(done.order), reduced_by=reduced, reduced_by_fp=fp(reduced)
    )


@portfolio.post("/orders/{order_id}/amend", summary="Change price and/or size (write tier: 1)")
async def amend_order(
    order_id: str,
    body: AmendOrderRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
    idempotency_key: IdempotencyKey = None,
) -> AmendOrderResponse:
    oid = _order_id(order_id)
    await charge_write(request, response, user, WRITE_COST)
    if body.updated_client_order_id is not None:
        raise BadRequest("updated_client_order_id is not supported", code="INVALID_PARAMETERS")
    yes_given = _one_of(body.yes_price, body.yes_price_dollars, "yes_price")
    no_given = _one_of(body.no_price, body.no_price_dollars, "no_price")
    count = _one_of(body.count, body.count_fp, "count")

    def change(old: OrderRead) -> OrderAmend:
        """The amend in PULL's terms, from the order as it is under its market's gate."""
        for name in ("ticker", "side", "action", "client_order_id"):
            given = getattr(body, name)
            if given is not None and given != getattr(old, name):
                raise BadRequest(
                    f"{name} does not match the order",
                    code="INVALID_PARAMETERS",
                    details={name: given},
                )
        yes_price, no_price = yes_given, no_given
        if yes_price is None and no_price is None:
            yes_price = old.yes_price if old.side == "yes" else None
            no_price = old.no_price if old.side == "no" else None
        return OrderAmend(
            yes_price=yes_price,
            no_price=no_price,
            count=old.initial_count if count is None else count,
        )

    done = await book_commands.amend(
        session=session,
        user=user,
        order_id=oid,
        data=change,
        idempotency_key=idempotency_key,
        request=body.model_dump(mode="json"),
    )
    if done.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    old, order = done.old, done.order
    return AmendOrderResponse(old_order=to_order(old), order=to_order(order))


@portfolio.post("/orders/{order_id}/decrease", summary="Shrink a resting order (write tier: 1)")
async def decrease_order(
    order_id: str,
    body: DecreaseOrderRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
    idempotency_key: IdempotencyKey = None,
) -> DecreaseOrderResponse:
    oid = _order_id(order_id)
    data = OrderDecrease(
        reduce_by=_one_of(body.reduce_by, body.reduce_by_fp, "reduce_by"),
        reduce_to=_one_of(body.reduce_to, body.reduce_to_fp, "reduce_to"),
    )
    await charge_write(request, response, user, WRITE_COST)
    done = await book_commands.decrease(
        session=session, user=user, order_id=oid, data=data, idempotency_key=idempotency_key
    )
    if done.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return DecreaseOrderResponse(order=to_order(done.order))


@portfolio.get("/fills", summary="The caller's fills, newest first")
async def get_fills(
    user: Reader,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    ticker: str | None = None,
    order_id: str | None = None,
    min_ts: int | None = None,
    max_ts: int | None = None,
) -> GetFillsResponse:
    oid = None if order_id is None else _order_id(order_id)

    async def fetch(c: str | None, n: int) -> tuple[Sequence[Any], str | None]:
        page = await svc.list_fills(
            session=session, user_id=user.id, ticker=ticker, order_id=oid, cursor=c, limit=n
        )
        return page.items, page.cursor

    filtered = min_ts is not None or max_ts is not None
    got = await collect(
        fetch,
        (lambda f: _in_window(f.created_time, min_ts, max_ts)) if filtered else None,
        cursor=cursor,
        limit=_limit(limit),
    )
    return GetFillsResponse(
        fills=[
            Fill(
                fill_id=str(f.fill_id),
                trade_id=str(f.trade_id),
                order_id=str(f.order_id),
                ticker=f.ticker,
                market_ticker=f.ticker,
                side=f.side,
                action=f.action,
                count=f.count,
                count_fp=fp(f.count),
                yes_price=f.yes_price,
                no_price=f.no_price,
                yes_price_dollars=dollars(f.yes_price),
                no_price_dollars=dollars(f.no_price),
                price=f.yes_price if f.side == "yes" else f.no_price,
                is_taker=f.is_taker,
                fee_cost=dollars(f.fee),
                fee=f.fee,
                created_time=f.created_time,
                ts=_ts(f.created_time),
            )
            for f in got.items
        ],
        cursor=got.cursor,
    )


@portfolio.get("/settlements", summary="The caller's settled positions, newest first")
async def get_settlements(
    user: Reader,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    ticker: str | None = None,
    event_ticker: str | None = None,
    min_ts: int | None = None,
    max_ts: int | None = None,
) -> GetSettlementsResponse:
    lookups = Lookups(session)

    async def fetch(c: str | None, n: int) -> tuple[Sequence[Any], str | None]:
        page = await svc.list_settlements(session=session, user_id=user.id, cursor=c, limit=n)
        await lookups.event_tickers([s.ticker for s in page.items])
        return page.items, page.cursor

    def keep(s: Any) -> bool:
        if ticker is not None and s.ticker != ticker:
            return False
        if event_ticker is not None and lookups.market_events.get(s.ticker) != event_ticker:
            return False
        return _in_window(s.settled_time, min_ts, max_ts)

    filtered = any(v is not None for v in (ticker, event_ticker, min_ts, max_ts))
    got = await collect(fetch, keep if filtered else None, cursor=cursor, limit=_limit(limit))
    return GetSettlementsResponse(
        settlements=[
            Settlement(
                ticker=s.ticker,
                event_ticker=lookups.market_events.get(s.ticker) or None,
                market_result=s.market_result,
                result=s.market_result,
                yes_count=s.yes_count,
                yes_count_fp=fp(s.yes_count),
                no_count=s.no_count,
                no_count_fp=fp(s.no_count),
                revenue=s.revenue,
                revenue_dollars=dollars(s.revenue),
                cost_basis=s.cost_basis,
                settled_time=s.settled_time,
            )
            for s in got.items
        ],
        cursor=got.cursor,
    )


@portfolio.get(
    "/summary/total_resting_order_value",
    summary="Cents committed to the caller's resting buy orders (price x remaining count)",
)
async def total_resting_order_value(
    user: Reader, session: SessionDep
) -> GetTotalRestingOrderValueResponse:
    total = 0
    cursor: str | None = None
    while True:
        page = await svc.list_orders(
            session=session, user_id=user.id, status="resting", cursor=cursor, limit=MAX_LIMIT
        )
        for o in page.items:
            if o.action == "buy":
                price = o.yes_price if o.side == "yes" else o.no_price
                total += price * o.remaining_count
        cursor = page.cursor
        if not cursor:
            break
    return GetTotalRestingOrderValueResponse(total_resting_order_value=total)


# --- API keys ----------------------------------------------------------------------------------

api_keys = APIRouter(prefix="/api_keys", tags=["api keys"])


@api_keys.get("", summary="The caller's API keys")
async def list_api_keys(user: Reader, session: SessionDep) -> GetApiKeysResponse:
    keys = await identity.list_api_keys(session=session, user_id=user.id)
    return GetApiKeysResponse(
        api_keys=[
            ApiKey(
                api_key_id=str(k.key_id),
                name=k.name,
                scopes=["read", "write"],
                created_ts=k.created_at,
            )
            for k in keys
        ]
    )


async def _create_key(
    session: AsyncSession, request: Request, user: AuthUser, public_pem: str, name: str
) -> str:
    """identity refuses (and audits) key creation by a signed request: the refusal's audit entry
    is committed before the error answers."""
    try:
        created = await identity.create_api_key(
            session=session,
            caller=user,
            data=ApiKeyCreate(name=name, public_key_pem=public_pem),
            meta=request_meta(request),
        )
    except Exception as exc:
        if must_persist(exc):
            await session.commit()
        raise
    return str(created.key_id)


@api_keys.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Refused (403 SIGNED_REQUEST_CANNOT_CREATE_KEYS): a request signed with an API key "
    "cannot create keys; use POST /api/v1/api-keys from a recently authenticated session",
)
async def create_api_key(
    body: CreateApiKeyRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
) -> CreateApiKeyResponse:
    await charge_write(request, response, user, WRITE_COST)
    key_id = await _create_key(session, request, user, body.public_key, body.name)
    return CreateApiKeyResponse(api_key_id=key_id)


def _new_key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@api_keys.post(
    "/generate",
    status_code=status.HTTP_201_CREATED,
    summary="Refused like POST /api_keys; counted in the write tier, and checked before any "
    "RSA key is generated",
)
async def generate_api_key(
    body: GenerateApiKeyRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
) -> GenerateApiKeyResponse:
    # RSA generation is expensive: a write, and only after the caller may create a key at all.
    await charge_write(request, response, user, WRITE_COST)
    try:
        identity.check_can_create_api_key(session=session, caller=user, meta=request_meta(request))
    except Exception as exc:
        if must_persist(exc):
            await session.commit()
        raise
    private, public = await anyio.to_thread.run_sync(_new_key_pair)
    key_id = await _create_key(session, request, user, public, body.name)
    return GenerateApiKeyResponse(api_key_id=key_id, private_key=private)


@api_keys.delete("/{api_key}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key")
async def delete_api_key(
    api_key: str, request: Request, user: Reader, session: SessionDep
) -> Response:
    try:
        key_id = uuid.UUID(api_key)
    except ValueError:
        raise NotFound("API key not found", code="API_KEY_NOT_FOUND") from None
    await identity.revoke_api_key(
        session=session, user_id=user.id, key_id=key_id, meta=request_meta(request)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- what PULL does not offer ------------------------------------------------------------------

# Kalshi features without a PULL counterpart: a clear 501 in Kalshi's error shape.
UNSUPPORTED: dict[str, str] = {
    "/communications": "RFQs and quotes (communications)",
    "/multivariate_event_collections": "multivariate event collections",
    "/portfolio/order_groups": "order groups",
    "/portfolio/orders/queue_positions": "batch queue positions",
    "/portfolio/subaccounts": "subaccounts",
    "/milestones": "milestones",
    "/structured_targets": "structured targets",
    "/historical": "historical data (everything is served by the live endpoints)",
    "/live_data": "live data",
    "/incentive_programs": "incentive programs",
    "/fcm": "FCM endpoints",
    "/account": "account API limits",
    "/search": "search",
    "/exchange/user_data_timestamp": "user data timestamps",
    "/events/multivariate": "multivariate events",
    "/markets/candlesticks": "batch candlesticks",
    "/markets/orderbooks": "batch order books",
    "/series/fee_changes": "fee change schedules",
}
_ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _not_offered(what: str) -> Callable[[], Awaitable[JSONResponse]]:
    async def endpoint() -> JSONResponse:
        return kalshi_error(501, "NOT_SUPPORTED", f"PULL does not offer {what}", {"feature": what})

    return endpoint


def _unsupported_router() -> APIRouter:
    """Included before the real routes, so `/events/multivariate` is not read as an event."""
    router = APIRouter(include_in_schema=False)
    for prefix, what in UNSUPPORTED.items():
        for path in (prefix, prefix + "/{rest:path}"):
            router.add_api_route(path, _not_offered(what), methods=_ANY_METHOD)
    router.add_api_route(
        "/events/{event_ticker}/metadata", _not_offered("event metadata"), methods=["GET"]
    )
    return router


# --- the sub-application -------------------------------------------------------------------------


def create_trade_api(parent: FastAPI) -> FastAPI:
    """The Kalshi-compatible API as an ASGI app sharing `parent`'s state."""
    sub = FastAPI(
        title="PULL Trade API v2 (Kalshi-compatible)",
        version="2",
        description=(
            "Kalshi's Trade API v2 on PULL's exchange: Kalshi's paths, fields, units and "
            "RSA-PSS request signing (KALSHI-ACCESS-KEY, -TIMESTAMP, -SIGNATURE). Errors come "
            'as `{"error": {"code", "message", "details"}}`. See docs/kalshi-compatibility.md.'
        ),
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(reject_unsafe_text)],
        responses={
            400: {"model": ErrorResponse},
            401: {"model": ErrorResponse},
            404: {"model": ErrorResponse},
            409: {"model": ErrorResponse},
            429: {"model": ErrorResponse},
        },
    )
    sub.state = parent.state
    install_error_handlers(sub)

    @sub.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=PREFIX + "/openapi.json",
            title="PULL Trade API v2 docs",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )

    sub.include_router(_unsupported_router())
    sub.include_router(public)
    sub.include_router(portfolio)
    sub.include_router(api_keys)
    return sub


class TradeApiFallback:
    """Serves `/trade-api/v2/...` when none of the parent app's own routes matched.

    The sub-application is reached as the parent router's fallback rather than as an ordinary
    mount, so routes the parent declares itself under the same prefix keep precedence. The
    scope is prepared exactly as a `Mount` would prepare it (root_path, route), so metrics see
    `/trade-api/v2/markets/{ticker}`-style route templates.
    """

    def __init__(self, mount: Mount, fallback: ASGIApp) -> None:
        self.mount = mount
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match, child_scope = self.mount.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                scope["route"] = self.mount
                await self.mount.app(scope, receive, send)
                return
        await self.fallback(scope, receive, send)


def install_trade_api(app: FastAPI) -> None:
    mount = Mount(PREFIX, app=create_trade_api(app), name="trade-api-v2")
    app.router.default = TradeApiFallback(mount, app.router.default)
