"""RWA secondary-market routes: orders (place, list, get, cancel, decrease), the order book,
trades and candles of an asset."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field

from pull.identity.deps import ActiveUser, CurrentUser
from pull.kit.db import SessionDep, session_scope
from pull.kit.errors import BadRequest
from pull.kit.idempotency import IdempotencyKeyHeader, run_idempotent
from pull.kit.pagination import (
    clamp_limit,
    created_before,
    created_next,
    decode_cursor,
    encode_cursor,
)
from pull.rwa import service
from pull.rwa.deps import ERRORS, MONEY, money, relaxed
from pull.rwa.order_batcher import SCOPE, Pending, batcher_of
from pull.rwa.schemas import (
    CandlesRead,
    OrderbookRead,
    OrderCreate,
    OrderPage,
    OrderRead,
    TradePage,
)

router = APIRouter(prefix="/api/v1/rwa", tags=["rwa"], responses=ERRORS)


_TRADING: dict[int | str, dict[str, Any]] = {
    **MONEY,
    404: {"description": "ASSET_NOT_FOUND"},
    409: {
        "description": "TRADING_HALTED, MARKET_CLOSED, INSUFFICIENT_FUNDS, INSUFFICIENT_SHARES, "
        "IDEMPOTENCY_KEY_REUSED"
    },
}


@router.post(
    "/orders",
    response_model=OrderRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=money,
    summary="Place a limit order on an asset's book (Idempotency-Key); a buy holds its cash, "
    "a sell its shares",
    responses=_TRADING,
)
async def place_order(
    body: OrderCreate,
    user: ActiveUser,
    key: IdempotencyKeyHeader,
    request: Request,
) -> JSONResponse:
    settings = request.app.state.settings
    if settings.rwa_order_batch_max > 1:
        # Group commit (order_batcher): the order waits for its asset's next batch, which
        # reads the KYC tiers of all its traders at once; this request holds no database
        # connection of its own unless it is answered on the one-order path below.
        stored = await batcher_of(request.app.state).place(
            body.asset_id,
            Pending(
                service.OrderSpec(
                    user.id, body.side, body.price_cents, body.quantity, body.time_in_force
                ),
                key,
                body.model_dump(mode="json"),
            ),
        )
        if stored is not None:
            return JSONResponse(stored, status_code=status.HTTP_201_CREATED)
    async with session_scope(request.app.state.sessionmaker) as session:
        result = await run_idempotent(
            session,
            owner=str(user.id),
            scope=SCOPE,
            key=key,
            request=body.model_dump(mode="json"),
            status_code=201,
            handler=lambda: service.place_order(
                session=session,
                user_id=user.id,
                asset_id=body.asset_id,
                side=body.side,
                price_cents=body.price_cents,
                quantity=body.quantity,
                time_in_force=body.time_in_force,
                trading_hours=settings.rwa_trading_hours,
            ),
        )
    return result.response()


@router.get(
    "/orders", response_model=OrderPage, dependencies=relaxed, summary="The caller's orders"
)
async def list_orders(
    user: CurrentUser,
    session: SessionDep,
    asset_id: Annotated[uuid.UUID | None, Query()] = None,
    order_status: Annotated[
        Literal["resting", "executed", "canceled"] | None, Query(alias="status")
    ] = None,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int | None, Query()] = None,
) -> OrderPage:
    size = clamp_limit(limit)
    items = await service.list_orders(
        session=session,
        user_id=user.id,
        asset_id=asset_id,
        status=order_status,
        before=created_before(cursor),
        limit=size + 1,
    )
    return OrderPage(items=items[:size], cursor=created_next(items, size))


@router.get(
    "/orders/{order_id}",
    response_model=OrderRead,
    dependencies=relaxed,
    responses={404: {"description": "ORDER_NOT_FOUND"}},
)
async def get_order(order_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> OrderRead:
    return await service.get_order(session=session, user_id=user.id, order_id=order_id)


@router.delete(
    "/orders/{order_id}",
    response_model=OrderRead,
    dependencies=money,
    summary="Cancel a resting order; what it holds goes back",
    responses={404: {"description": "ORDER_NOT_FOUND"}, 409: {"description": "INVALID_STATE"}},
)
async def cancel_order(order_id: uuid.UUID, user: ActiveUser, session: SessionDep) -> OrderRead:
    return await service.cancel_order(session=session, user_id=user.id, order_id=order_id)


class DecreaseRequest(BaseModel):
    reduce_by: int = Field(gt=0, le=10**9, description="Shares to take off the order")


@router.post(
    "/orders/{order_id}/decrease",
    response_model=OrderRead,
    dependencies=money,
    summary="Shrink a resting order (it keeps its queue place); to zero cancels it",
    responses={404: {"description": "ORDER_NOT_FOUND"}, 409: {"description": "INVALID_STATE"}},
)
async def decrease_order(
    order_id: uuid.UUID, body: DecreaseRequest, user: ActiveUser, session: SessionDep
) -> OrderRead:
    return await service.decrease_order(
        session=session, user_id=user.id, order_id=order_id, reduce_by=body.reduce_by
    )


@router.get(
    "/assets/{asset_id}/orderbook",
    response_model=OrderbookRead,
    dependencies=relaxed,
    summary="Resting shares per price level: bids highest first, asks lowest first",
    responses={404: {"description": "ASSET_NOT_FOUND"}},
)
async def orderbook(
    asset_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    depth: Annotated[int, Query(ge=1, le=100)] = 20,
) -> OrderbookRead:
    return await service.orderbook(session=session, asset_id=asset_id, depth=depth)


@router.get(
    "/assets/{asset_id}/trades",
    response_model=TradePage,
    dependencies=relaxed,
    summary="The asset's trades, newest first",
    responses={404: {"description": "ASSET_NOT_FOUND"}},
)
async def trades(
    asset_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int | None, Query()] = None,
) -> TradePage:
    size = clamp_limit(limit)
    value = decode_cursor(cursor)
    before: int | None = None
    if value is not None:
        raw = value.get("id")
        if not isinstance(raw, int) or isinstance(raw, bool) or not 0 < raw < 2**63:
            raise BadRequest("Invalid cursor", code="INVALID_CURSOR")
        before = raw
    items = await service.trades(
        session=session, asset_id=asset_id, before_id=before, limit=size + 1
    )
    nxt = encode_cursor({"id": items[size - 1].id}) if len(items) > size else None
    return TradePage(items=items[:size], cursor=nxt)


@router.get(
    "/assets/{asset_id}/candles",
    response_model=CandlesRead,
    dependencies=relaxed,
    summary="OHLC and volume from the asset's trades (interval 1m, 1h or 1d; at most 1000)",
    responses={404: {"description": "ASSET_NOT_FOUND"}},
)
async def candles(
    asset_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    interval: Annotated[Literal["1m", "1h", "1d"], Query()] = "1h",
    start: Annotated[AwareDatetime | None, Query()] = None,
    end: Annotated[AwareDatetime | None, Query()] = None,
) -> CandlesRead:
    stop = end or dt.datetime.now(dt.UTC)
    seconds = service.INTERVALS[interval]
    try:
        begin = start or stop - dt.timedelta(seconds=seconds * 100)
    except OverflowError as exc:
        raise BadRequest("end is too early", code="INVALID_RANGE") from exc
    if begin >= stop or (stop - begin).total_seconds() > seconds * 1000:
        raise BadRequest(
            "start must be before end and at most 1000 intervals earlier", code="INVALID_RANGE"
        )
    return await service.candles(
        session=session, asset_id=asset_id, interval=interval, start=begin, end=stop
    )


# --- buyouts -------------------------------------------------------------------------------
