"""RWA routes: assets, search, listings, ownership, offerings and subscriptions; admin routes
for assets, appraisals and offerings (audited; opening an offering is four-eyes)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field

from pull.identity.deps import ActiveUser, AdminUser, CurrentUser
from pull.kit.db import SessionDep
from pull.kit.errors import BadRequest
from pull.kit.idempotency import IdempotencyKeyHeader, run_idempotent
from pull.kit.pagination import (
    clamp_limit,
    created_before,
    created_next,
    decode_cursor,
    encode_cursor,
)
from pull.kit.ratelimit import general, payment_routes
from pull.rwa import service
from pull.rwa.providers import Grader, graders_for
from pull.rwa.schemas import (
    AssetCreate,
    AssetDetail,
    AssetPage,
    AssetState,
    BuyoutCreate,
    BuyoutRead,
    CandlesRead,
    Category,
    ListingPage,
    OfferingCreate,
    OfferingRead,
    OrderbookRead,
    OrderCreate,
    OrderPage,
    OrderRead,
    Ownership,
    PurchaseRead,
    PurchaseRequest,
    SubscribeRequest,
    SubscriptionPage,
    SubscriptionRead,
    TradePage,
    ValuationCreate,
    ValuationRead,
    VoteRequest,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    429: {"description": "Rate limited"},
}
_MONEY: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    400: {"description": "IDEMPOTENCY_KEY_REQUIRED"},
    403: {"description": "ACCOUNT_RESTRICTED or KYC_REQUIRED {required_tier}"},
    404: {"description": "OFFERING_NOT_FOUND / ASSET_NOT_FOUND"},
    409: {
        "description": "OFFERING_NOT_OPEN, OFFERING_SOLD_OUT {remaining}, "
        "INVESTOR_CAP_EXCEEDED {cap, held}, INSUFFICIENT_FUNDS, IDEMPOTENCY_KEY_REUSED"
    },
    422: {"description": "Invalid input"},
}

router = APIRouter(prefix="/api/v1/rwa", tags=["rwa"], responses=_ERRORS)
admin_router = APIRouter(prefix="/api/admin/rwa", tags=["admin"], responses=_ERRORS)
relaxed = [Depends(general)]
money = [Depends(payment_routes)]


def graders(request: Request) -> dict[str, Grader]:
    found: dict[str, Grader] | None = getattr(request.app.state, "rwa_graders", None)
    if found is None:
        found = graders_for(request.app.state.settings)
        request.app.state.rwa_graders = found
    return found


Graders = Annotated[dict[str, Grader], Depends(graders)]


# --- public reads -------------------------------------------------------------------------------


@router.get(
    "/assets",
    response_model=AssetPage,
    dependencies=relaxed,
    summary="Assets, newest first (filters: category, state, q), cursor-paginated",
)
async def list_assets(
    user: CurrentUser,
    session: SessionDep,
    category: Annotated[Category | None, Query()] = None,
    state: Annotated[AssetState | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int | None, Query()] = None,
) -> AssetPage:
    size = clamp_limit(limit)
    items = await service.list_assets(
        session=session,
        category=category,
        states=[state] if state else None,
        query=q.strip() if q and q.strip() else None,
        before=created_before(cursor),
        limit=size + 1,
    )
    return AssetPage(items=items[:size], cursor=created_next(items, size))


@router.get(
    "/search",
    response_model=AssetPage,
    dependencies=relaxed,
    summary="Search assets by title, description or certificate number",
)
async def search(
    user: CurrentUser,
    session: SessionDep,
    q: Annotated[str, Query(min_length=1, max_length=100)],
    limit: Annotated[int | None, Query()] = None,
) -> AssetPage:
    size = clamp_limit(limit)
    items = await service.list_assets(session=session, query=q.strip() or q, limit=size)
    return AssetPage(items=items)


@router.get(
    "/assets/{asset_id}",
    response_model=AssetDetail,
    dependencies=relaxed,
    responses={404: {"description": "ASSET_NOT_FOUND"}},
)
async def get_asset(asset_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> AssetDetail:
    return await service.get_asset(session=session, asset_id=asset_id)


@router.get(
    "/listings",
    response_model=ListingPage,
    dependencies=relaxed,
    summary="Open offerings (closing soonest first) and assets trading",
)
async def listings(user: CurrentUser, session: SessionDep) -> ListingPage:
    return ListingPage(items=await service.listings(session=session))


@router.get(
    "/ownership",
    response_model=Ownership,
    dependencies=relaxed,
    summary="The caller's holdings with cost basis and current value",
)
async def ownership(user: CurrentUser, session: SessionDep) -> Ownership:
    return await service.ownership(session=session, user_id=user.id)


@router.get(
    "/offerings/{offering_id}",
    response_model=OfferingRead,
    dependencies=relaxed,
    responses={404: {"description": "OFFERING_NOT_FOUND"}},
)
async def get_offering(
    offering_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> OfferingRead:
    return await service.get_offering(session=session, offering_id=offering_id)


@router.get(
    "/subscriptions",
    response_model=SubscriptionPage,
    dependencies=relaxed,
    summary="The caller's subscriptions, newest first",
)
async def list_subscriptions(
    user: CurrentUser,
    session: SessionDep,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int | None, Query()] = None,
) -> SubscriptionPage:
    size = clamp_limit(limit)
    items = await service.list_subscriptions(
        session=session, user_id=user.id, before=created_before(cursor), limit=size + 1
    )
    return SubscriptionPage(items=items[:size], cursor=created_next(items, size))


# --- money-moving -------------------------------------------------------------------------------


@router.post(
    "/offerings/{offering_id}/subscribe",
    response_model=SubscriptionRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=money,
    summary="Subscribe to whole shares of an open offering (Idempotency-Key); holds the cash",
    responses=_MONEY,
)
async def subscribe(
    offering_id: uuid.UUID,
    body: SubscribeRequest,
    user: ActiveUser,
    session: SessionDep,
    key: IdempotencyKeyHeader,
) -> JSONResponse:
    result = await run_idempotent(
        session,
        owner=str(user.id),
        scope=f"POST /api/v1/rwa/offerings/{offering_id}/subscribe",
        key=key,
        request=body.model_dump(mode="json"),
        status_code=201,
        handler=lambda: service.subscribe(
            session=session, user_id=user.id, offering_id=offering_id, shares=body.shares
        ),
    )
    return result.response()


@router.post(
    "/purchase",
    response_model=PurchaseRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=money,
    summary="Buy from a listing (Idempotency-Key): a subscription to the asset's open offering, "
    "or for an asset trading an immediate-or-cancel buy up to max_price_cents",
    responses=_MONEY,
)
async def purchase(
    body: PurchaseRequest,
    user: ActiveUser,
    session: SessionDep,
    key: IdempotencyKeyHeader,
    request: Request,
) -> JSONResponse:
    result = await run_idempotent(
        session,
        owner=str(user.id),
        scope="POST /api/v1/rwa/purchase",
        key=key,
        request=body.model_dump(mode="json"),
        status_code=201,
        handler=lambda: service.purchase(
            session=session,
            user_id=user.id,
            asset_id=body.asset_id,
            shares=body.shares,
            max_price_cents=body.max_price_cents,
            trading_hours=request.app.state.settings.rwa_trading_hours,
        ),
    )
    return result.response()


# --- secondary market ----------------------------------------------------------------------------

_TRADING: dict[int | str, dict[str, Any]] = {
    **_MONEY,
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
    session: SessionDep,
    key: IdempotencyKeyHeader,
    request: Request,
) -> JSONResponse:
    result = await run_idempotent(
        session,
        owner=str(user.id),
        scope="POST /api/v1/rwa/orders",
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
            trading_hours=request.app.state.settings.rwa_trading_hours,
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


@router.get(
    "/assets/{asset_id}/buyouts",
    response_model=list[BuyoutRead],
    dependencies=relaxed,
    summary="Buyout offers for the asset, newest first",
)
async def list_buyouts(
    asset_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> list[BuyoutRead]:
    return await service.list_buyouts(session=session, asset_id=asset_id)


@router.get(
    "/buyouts/{buyout_id}",
    response_model=BuyoutRead,
    dependencies=relaxed,
    summary="A buyout offer: the tally, the threshold and the caller's vote",
    responses={404: {"description": "BUYOUT_NOT_FOUND"}},
)
async def get_buyout(buyout_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> BuyoutRead:
    return await service.get_buyout(session=session, buyout_id=buyout_id, user_id=user.id)


@router.post(
    "/buyouts/{buyout_id}/vote",
    response_model=BuyoutRead,
    dependencies=relaxed,
    summary="Vote on a buyout with every share held (a second vote replaces the first)",
    responses={
        403: {"description": "NOT_A_HOLDER"},
        404: {"description": "BUYOUT_NOT_FOUND"},
        409: {"description": "INVALID_STATE: the vote is closed"},
    },
)
async def vote(
    buyout_id: uuid.UUID, body: VoteRequest, user: ActiveUser, session: SessionDep
) -> BuyoutRead:
    return await service.vote(
        session=session, user_id=user.id, buyout_id=buyout_id, approve=body.approve
    )


# --- admin --------------------------------------------------------------------------------------


class CancelRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=200)


@admin_router.post(
    "/assets",
    response_model=AssetDetail,
    status_code=status.HTTP_201_CREATED,
    summary="Create an asset (draft); its certificate is verified with the grader's registry",
    responses={
        409: {"description": "DUPLICATE_CERTIFICATE"},
        422: {"description": "CERTIFICATE_NOT_FOUND, GRADE_MISMATCH, CONSIGNOR_NOT_FOUND"},
        502: {"description": "GRADER_UNAVAILABLE"},
        503: {"description": "GRADER_RATE_LIMITED"},
    },
)
async def create_asset(
    body: AssetCreate, admin: AdminUser, session: SessionDep, registries: Graders
) -> AssetDetail:
    return await service.create_asset(
        session=session, graders=registries, actor_id=admin.id, data=body
    )


@admin_router.post(
    "/assets/{asset_id}/valuations",
    response_model=ValuationRead,
    status_code=status.HTTP_201_CREATED,
    summary="Record an appraisal or a comparable sale",
    responses={404: {"description": "ASSET_NOT_FOUND"}},
)
async def add_valuation(
    asset_id: uuid.UUID, body: ValuationCreate, admin: AdminUser, session: SessionDep
) -> ValuationRead:
    return await service.add_valuation(
        session=session, actor_id=admin.id, asset_id=asset_id, data=body
    )


@admin_router.post(
    "/assets/{asset_id}/offerings",
    response_model=OfferingRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create a draft offering of an asset",
    responses={404: {"description": "ASSET_NOT_FOUND"}, 409: {"description": "INVALID_STATE"}},
)
async def create_offering(
    asset_id: uuid.UUID, body: OfferingCreate, admin: AdminUser, session: SessionDep
) -> OfferingRead:
    return await service.create_offering(
        session=session, actor_id=admin.id, asset_id=asset_id, data=body
    )


@admin_router.post(
    "/offerings/{offering_id}/open",
    response_model=OfferingRead,
    summary="Open a draft offering (a second admin: four-eyes); starts its OfferingWorkflow",
    responses={
        403: {"description": "FOUR_EYES_REQUIRED"},
        404: {"description": "OFFERING_NOT_FOUND"},
        409: {"description": "INVALID_STATE"},
    },
)
async def open_offering(
    offering_id: uuid.UUID, admin: AdminUser, session: SessionDep
) -> OfferingRead:
    return await service.open_offering(session=session, actor_id=admin.id, offering_id=offering_id)


@admin_router.post(
    "/offerings/{offering_id}/cancel",
    response_model=OfferingRead,
    summary="Cancel a draft or open offering; every hold is voided",
    responses={404: {"description": "OFFERING_NOT_FOUND"}, 409: {"description": "INVALID_STATE"}},
)
async def cancel_offering(
    offering_id: uuid.UUID, body: CancelRequest, admin: AdminUser, session: SessionDep
) -> OfferingRead:
    return await service.cancel_offering(
        session=session, actor_id=admin.id, offering_id=offering_id, reason=body.reason
    )


@admin_router.post(
    "/assets/{asset_id}/buyouts",
    response_model=BuyoutRead,
    status_code=status.HTTP_201_CREATED,
    summary="Enter a buyout offer for the whole asset: trading halts, the holders' vote opens",
    responses={404: {"description": "ASSET_NOT_FOUND"}, 409: {"description": "INVALID_STATE"}},
)
async def create_buyout(
    asset_id: uuid.UUID,
    body: BuyoutCreate,
    admin: AdminUser,
    session: SessionDep,
    request: Request,
) -> BuyoutRead:
    settings = request.app.state.settings
    return await service.create_buyout(
        session=session,
        actor_id=admin.id,
        asset_id=asset_id,
        data=body,
        vote_seconds=settings.rwa_buyout_vote_seconds,
        pass_bps=settings.rwa_buyout_pass_bps,
    )


@admin_router.post(
    "/buyouts/{buyout_id}/settle",
    response_model=BuyoutRead,
    summary="The buyer paid (a second admin: four-eyes): the sale settles, proceeds are "
    "distributed pro rata and the shares retired",
    responses={
        403: {"description": "FOUR_EYES_REQUIRED"},
        404: {"description": "BUYOUT_NOT_FOUND"},
        409: {"description": "INVALID_STATE"},
    },
)
async def settle_buyout(buyout_id: uuid.UUID, admin: AdminUser, session: SessionDep) -> BuyoutRead:
    return await service.settle_buyout(session=session, actor_id=admin.id, buyout_id=buyout_id)


def routers() -> list[APIRouter]:
    return [router, admin_router]
