"""HTTP routers of the exchange: the app API (JWT) and the admin market-structure API.

Thin: parse, authorize, call the service, shape the response. Book-changing calls are retried
(whole transaction) when PostgreSQL picks them as a deadlock victim (two placements in
different markets can meet on the same users' ledger accounts).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Query, status
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import service
from pull.exchange.schemas import (
    BatchCancel,
    BatchCreate,
    BatchResult,
    CandlesticksRead,
    EventCreate,
    EventRead,
    FillRead,
    MarketCreate,
    MarketRead,
    MarketStatus,
    OrderAmend,
    OrderbookRead,
    OrderCreate,
    OrderDecrease,
    OrderRead,
    OrderStatus,
    PositionRead,
    ResolveRequest,
    SeriesCreate,
    SeriesRead,
    SettlementRead,
    TradeRead,
)
from pull.identity.deps import ActiveUser, AdminUser, CurrentUser
from pull.kit.db import SessionDep
from pull.kit.errors import ServiceUnavailable
from pull.kit.pagination import Page
from pull.kit.ratelimit import general, trading_routes

T = TypeVar("T")

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid order (INVALID_PRICE, INVALID_ORDER, ...)"},
    401: {"description": "Not signed in"},
    403: {"description": "KYC_REQUIRED, LIMIT_EXCEEDED or not allowed"},
    404: {"description": "MARKET_NOT_FOUND, ORDER_NOT_FOUND, ..."},
    409: {
        "description": "MARKET_CLOSED, MARKET_PAUSED, INSUFFICIENT_FUNDS, "
        "INSUFFICIENT_POSITION, POST_ONLY_WOULD_CROSS, ORDER_NOT_RESTING, ..."
    },
    422: {"description": "Malformed request"},
    429: {"description": "Rate limited"},
}

RETRYABLE = {"40P01", "40001"}  # deadlock detected, serialization failure
# One placement per market at a time in this process: the others wait here, not holding a
# database connection in PostgreSQL's lock queue while the lock holder competes with them for
# this process's event loop.
_MARKET_GATES: dict[str, asyncio.Lock] = {}


def _gate(ticker: str) -> asyncio.Lock:
    gate = _MARKET_GATES.get(ticker)
    if gate is None:
        if len(_MARKET_GATES) > 10_000:
            _MARKET_GATES.clear()
        gate = _MARKET_GATES[ticker] = asyncio.Lock()
    return gate


ATTEMPTS = 4

app_router = APIRouter(prefix="/api/v1", tags=["exchange"], responses=_ERRORS)
admin_router = APIRouter(prefix="/api/admin", tags=["exchange admin"], responses=_ERRORS)
trading = [Depends(trading_routes)]
reads = [Depends(general)]


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code is None:
        cause = getattr(orig, "__cause__", None)
        code = getattr(cause, "sqlstate", None)
    return code if isinstance(code, str) else None


async def book_call(session: AsyncSession, fn: Callable[[], Awaitable[T]]) -> T:
    """Run a book-changing service call; when PostgreSQL picks it as a deadlock victim, or two
    requests race to create one client_order_id, roll the whole transaction back and run it
    again (nothing of the failed attempt stays)."""
    for attempt in range(ATTEMPTS):
        try:
            return await fn()
        except IntegrityError as exc:
            if "uq_exchange_orders_client_order" not in str(exc) or attempt == ATTEMPTS - 1:
                raise
            await session.rollback()
        except DBAPIError as exc:
            if _sqlstate(exc) not in RETRYABLE:
                raise
            await session.rollback()
            if attempt == ATTEMPTS - 1:
                raise ServiceUnavailable(
                    "The market is busy, try again", code="BUSY", headers={"Retry-After": "1"}
                ) from exc
    raise AssertionError("unreachable")


# --- market data and structure reads -----------------------------------------------------------


@app_router.get("/series", response_model=list[SeriesRead], dependencies=reads)
async def list_series(user: CurrentUser, session: SessionDep) -> list[SeriesRead]:
    return await service.list_series(session=session)


@app_router.get("/series/{ticker}", response_model=SeriesRead, dependencies=reads)
async def get_series(ticker: str, user: CurrentUser, session: SessionDep) -> SeriesRead:
    return await service.get_series(session=session, ticker=ticker)


@app_router.get("/events", response_model=Page[EventRead], dependencies=reads)
async def list_events(
    user: CurrentUser,
    session: SessionDep,
    series_ticker: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[EventRead]:
    return await service.list_events(
        session=session, series_ticker=series_ticker, cursor=cursor, limit=limit
    )


@app_router.get("/events/{ticker}", response_model=EventRead, dependencies=reads)
async def get_event(ticker: str, user: CurrentUser, session: SessionDep) -> EventRead:
    return await service.get_event(session=session, ticker=ticker)


@app_router.get("/markets", response_model=Page[MarketRead], dependencies=reads)
async def list_markets(
    user: CurrentUser,
    session: SessionDep,
    status_: Annotated[MarketStatus | None, Query(alias="status")] = None,
    category: str | None = None,
    event_ticker: str | None = None,
    series_ticker: str | None = None,
    q: Annotated[str | None, Query(max_length=100, description="Text search")] = None,
    tickers: Annotated[str | None, Query(description="Comma-separated tickers")] = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[MarketRead]:
    return await service.list_markets(
        session=session,
        status=status_,
        category=category,
        event_ticker=event_ticker,
        series_ticker=series_ticker,
        search=q,
        tickers=[t for t in tickers.split(",") if t] if tickers else None,
        cursor=cursor,
        limit=limit,
    )


@app_router.get("/markets/{ticker}", response_model=MarketRead, dependencies=reads)
async def get_market(ticker: str, user: CurrentUser, session: SessionDep) -> MarketRead:
    return await service.get_market(session=session, ticker=ticker)


@app_router.get("/markets/{ticker}/orderbook", response_model=OrderbookRead, dependencies=reads)
async def get_orderbook(
    ticker: str,
    user: CurrentUser,
    session: SessionDep,
    depth: Annotated[int | None, Query(ge=0, le=100)] = None,
) -> OrderbookRead:
    return await service.get_orderbook(session=session, ticker=ticker, depth=depth)


@app_router.get("/markets/{ticker}/trades", response_model=Page[TradeRead], dependencies=reads)
async def market_trades(
    ticker: str,
    user: CurrentUser,
    session: SessionDep,
    min_ts: int | None = None,
    max_ts: int | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[TradeRead]:
    await service.get_market(session=session, ticker=ticker)
    return await service.list_trades(
        session=session, ticker=ticker, min_ts=min_ts, max_ts=max_ts, cursor=cursor, limit=limit
    )


@app_router.get(
    "/markets/{ticker}/candlesticks", response_model=CandlesticksRead, dependencies=reads
)
async def candlesticks(
    ticker: str,
    user: CurrentUser,
    session: SessionDep,
    start_ts: int,
    end_ts: int,
    period_interval: Annotated[int, Query(description="1, 60 or 1440 minutes")] = 1,
) -> CandlesticksRead:
    return await service.get_candlesticks(
        session=session,
        ticker=ticker,
        period_interval=period_interval,
        start_ts=start_ts,
        end_ts=end_ts,
    )


# --- orders ------------------------------------------------------------------------------------


@app_router.post(
    "/orders/batch",
    response_model=BatchResult,
    status_code=status.HTTP_201_CREATED,
    dependencies=trading,
)
async def batch_create(body: BatchCreate, user: ActiveUser, session: SessionDep) -> BatchResult:
    """Up to 20 orders; each succeeds or fails on its own (`error` per item)."""
    items = await service.batch_create_orders(session=session, user_id=user.id, orders=body.orders)
    return BatchResult(orders=items)


@app_router.delete("/orders/batch", response_model=BatchResult, dependencies=trading)
async def batch_cancel(body: BatchCancel, user: ActiveUser, session: SessionDep) -> BatchResult:
    items = await service.batch_cancel_orders(session=session, user_id=user.id, order_ids=body.ids)
    return BatchResult(orders=items)


@app_router.post(
    "/orders",
    response_model=OrderRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=trading,
)
async def create_order(
    body: OrderCreate,
    user: ActiveUser,
    session: SessionDep,
    idempotency_key: Annotated[str | None, Header(max_length=64)] = None,
) -> OrderRead:
    """Place an order. `client_order_id` (or the `Idempotency-Key` header) makes a retry
    return the order it first created."""
    async with _gate(body.ticker):
        order = await book_call(
            session,
            lambda: service.create_order(
                session=session, user_id=user.id, data=body, idempotency_key=idempotency_key
            ),
        )
        await session.commit()  # inside the gate: the next placement finds the lock free
    return order


@app_router.get("/orders", response_model=Page[OrderRead], dependencies=reads)
async def list_orders(
    user: CurrentUser,
    session: SessionDep,
    ticker: str | None = None,
    status_: Annotated[OrderStatus | None, Query(alias="status")] = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[OrderRead]:
    return await service.list_orders(
        session=session, user_id=user.id, ticker=ticker, status=status_, cursor=cursor, limit=limit
    )


@app_router.get("/orders/{order_id}", response_model=OrderRead, dependencies=reads)
async def get_order(order_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> OrderRead:
    return await service.get_order(session=session, user_id=user.id, order_id=order_id)


@app_router.delete("/orders/{order_id}", response_model=OrderRead, dependencies=trading)
async def cancel_order(order_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> OrderRead:
    """Cancel a resting order (allowed for restricted accounts too: it only reduces risk)."""
    return await book_call(
        session,
        lambda: service.cancel_order(session=session, user_id=user.id, order_id=order_id),
    )


@app_router.post("/orders/{order_id}/amend", response_model=OrderRead, dependencies=trading)
async def amend_order(
    order_id: uuid.UUID, body: OrderAmend, user: ActiveUser, session: SessionDep
) -> OrderRead:
    """New price and/or total count; the queue place is kept only when the size goes down."""
    return await book_call(
        session,
        lambda: service.amend_order(session=session, user_id=user.id, order_id=order_id, data=body),
    )


@app_router.post("/orders/{order_id}/decrease", response_model=OrderRead, dependencies=trading)
async def decrease_order(
    order_id: uuid.UUID, body: OrderDecrease, user: CurrentUser, session: SessionDep
) -> OrderRead:
    return await book_call(
        session,
        lambda: service.decrease_order(
            session=session, user_id=user.id, order_id=order_id, data=body
        ),
    )


# --- portfolio ---------------------------------------------------------------------------------


@app_router.get("/positions", response_model=Page[PositionRead], dependencies=reads)
async def positions(
    user: CurrentUser,
    session: SessionDep,
    ticker: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[PositionRead]:
    return await service.list_positions(
        session=session, user_id=user.id, ticker=ticker, cursor=cursor, limit=limit
    )


@app_router.get("/fills", response_model=Page[FillRead], dependencies=reads)
async def fills(
    user: CurrentUser,
    session: SessionDep,
    ticker: str | None = None,
    order_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[FillRead]:
    return await service.list_fills(
        session=session,
        user_id=user.id,
        ticker=ticker,
        order_id=order_id,
        cursor=cursor,
        limit=limit,
    )


@app_router.get("/settlements", response_model=Page[SettlementRead], dependencies=reads)
async def settlements(
    user: CurrentUser,
    session: SessionDep,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[SettlementRead]:
    return await service.list_settlements(
        session=session, user_id=user.id, cursor=cursor, limit=limit
    )


# --- admin: market structure -------------------------------------------------------------------


@admin_router.post("/series", response_model=SeriesRead, status_code=status.HTTP_201_CREATED)
async def admin_create_series(
    body: SeriesCreate, admin: AdminUser, session: SessionDep
) -> SeriesRead:
    return await service.create_series(session=session, data=body)


@admin_router.post("/events", response_model=EventRead, status_code=status.HTTP_201_CREATED)
async def admin_create_event(body: EventCreate, admin: AdminUser, session: SessionDep) -> EventRead:
    return await service.create_event(session=session, data=body)


@admin_router.post("/markets", response_model=MarketRead, status_code=status.HTTP_201_CREATED)
async def admin_create_market(
    body: MarketCreate, admin: AdminUser, session: SessionDep
) -> MarketRead:
    return await service.create_market(session=session, data=body)


def _lifecycle(action: str) -> Callable[..., Awaitable[MarketRead]]:
    async def endpoint(ticker: str, admin: AdminUser, session: SessionDep) -> MarketRead:
        return await book_call(
            session,
            lambda: service.set_market_status(session=session, ticker=ticker, action=action),
        )

    endpoint.__name__ = f"admin_{action}_market"
    return endpoint


for _action, _doc in (
    ("open", "initialized | paused -> open"),
    ("pause", "open -> paused"),
    ("close", "-> closed; resting orders are canceled and their holds released"),
):
    admin_router.post(
        f"/markets/{{ticker}}/{_action}", response_model=MarketRead, description=_doc
    )(_lifecycle(_action))


@admin_router.post("/markets/{ticker}/resolve", response_model=MarketRead)
async def admin_resolve_market(
    ticker: str, body: ResolveRequest, admin: AdminUser, session: SessionDep
) -> MarketRead:
    """Close the market with a result (yes, no or void), cancel its resting orders and start
    its settlement (workflow `settle-<ticker>`)."""
    return await book_call(
        session,
        lambda: service.resolve_market(session=session, ticker=ticker, result=body.result),
    )


def routers() -> list[APIRouter]:
    return [app_router, admin_router]
