"""HTTP routers of the exchange: the app API (JWT) and the admin market-structure API.

Thin: parse, authorize, call the service, shape the response. Every book change goes through
`pull.exchange.book_commands` (account rules, the market gate, its own committed transaction,
deadlock retries), the same unit of work as the Trade API's.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import book_commands, read_cache, service
from pull.exchange.read_cache import json_bytes
from pull.exchange.schemas import (
    BatchCancel,
    BatchCreate,
    BatchItem,
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
from pull.identity.deps import AdminUser, CurrentUser
from pull.kit.db import SessionDep
from pull.kit.pagination import Page
from pull.kit.ratelimit import general, trading_routes

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

app_router = APIRouter(prefix="/api/v1", tags=["exchange"], responses=_ERRORS)
admin_router = APIRouter(prefix="/api/admin", tags=["exchange admin"], responses=_ERRORS)
trading = [Depends(trading_routes)]
reads = [Depends(general)]


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
async def get_market(ticker: str, user: CurrentUser, request: Request) -> Response:
    async def load(session: AsyncSession) -> bytes:
        market = await service.get_market(session=session, ticker=ticker)
        return market.model_dump_json(by_alias=True).encode()

    # the serialized answer is what is cached (under the market's version, see read_cache);
    # a hit opens no session
    return json_bytes(await read_cache.serve(request, "market.json", ticker, None, load))


@app_router.get("/markets/{ticker}/orderbook", response_model=OrderbookRead, dependencies=reads)
async def get_orderbook(
    ticker: str,
    user: CurrentUser,
    request: Request,
    depth: Annotated[int | None, Query(ge=0, le=100)] = None,
) -> Response:
    async def load(session: AsyncSession) -> bytes:
        book = await service.get_orderbook(session=session, ticker=ticker, depth=depth)
        return book.model_dump_json(by_alias=True).encode()

    return json_bytes(await read_cache.serve(request, "orderbook.json", ticker, depth, load))


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
async def batch_create(body: BatchCreate, user: CurrentUser, session: SessionDep) -> BatchResult:
    """Up to 20 orders; each succeeds or fails on its own (`error` per item)."""
    items = await book_commands.place_batch(session=session, user=user, orders=body.orders)
    return BatchResult(orders=items)


@app_router.delete("/orders/batch", response_model=BatchResult, dependencies=trading)
async def batch_cancel(body: BatchCancel, user: CurrentUser, session: SessionDep) -> BatchResult:
    """Allowed for restricted accounts too: canceling only reduces risk."""
    done = await book_commands.cancel_batch(session=session, user=user, order_ids=body.ids)
    return BatchResult(
        orders=[BatchItem(order=c.order, error=c.error, order_id=c.order_id) for c in done]
    )


@app_router.post(
    "/orders",
    response_model=OrderRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=trading,
)
async def create_order(
    body: OrderCreate,
    user: CurrentUser,
    session: SessionDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Place an order. `client_order_id` (or the `Idempotency-Key` header) is its key: the same
    order again returns the first result (`Idempotent-Replayed: true`), another order under
    the same key is 409 IDEMPOTENCY_KEY_REUSED."""
    placed = await book_commands.place(
        session=session, user=user, data=body, idempotency_key=idempotency_key
    )
    # serialized once by its own model (no second validation pass against response_model)
    answer = json_bytes(
        placed.order.model_dump_json(by_alias=True).encode(),
        {"Idempotent-Replayed": "true"} if placed.replayed else None,
    )
    answer.status_code = status.HTTP_201_CREATED
    answer.headers.raw.extend(response.headers.raw)  # the dependencies' (X-RateLimit-*)
    return answer


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
    done = await book_commands.cancel(session=session, user=user, order_id=order_id)
    assert done.order is not None
    return done.order


@app_router.post("/orders/{order_id}/amend", response_model=OrderRead, dependencies=trading)
async def amend_order(
    order_id: uuid.UUID,
    body: OrderAmend,
    user: CurrentUser,
    session: SessionDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> OrderRead:
    """New price and/or total count; the queue place is kept only when the size goes down.
    An optional `Idempotency-Key` makes a retry return the first result."""
    done = await book_commands.amend(
        session=session, user=user, order_id=order_id, data=body, idempotency_key=idempotency_key
    )
    if done.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return done.order


@app_router.post("/orders/{order_id}/decrease", response_model=OrderRead, dependencies=trading)
async def decrease_order(
    order_id: uuid.UUID,
    body: OrderDecrease,
    user: CurrentUser,
    session: SessionDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> OrderRead:
    """Allowed for restricted accounts too: it only reduces risk. An optional
    `Idempotency-Key` makes a retried `reduce_by` decrease once."""
    done = await book_commands.decrease(
        session=session, user=user, order_id=order_id, data=body, idempotency_key=idempotency_key
    )
    if done.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return done.order


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
        return await book_commands.market_command(
            session=session,
            ticker=ticker,
            run=lambda: service.set_market_status(session=session, ticker=ticker, action=action),
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
    return await book_commands.market_command(
        session=session,
        ticker=ticker,
        run=lambda: service.resolve_market(
            session=session, ticker=ticker, result=body.result, actor_id=admin.id
        ),
    )


def routers() -> list[APIRouter]:
    return [app_router, admin_router]
