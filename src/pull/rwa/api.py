"""RWA routes for users: assets, search, listings, ownership, offerings, subscriptions and
buyout votes. The secondary market's routes are in `trading_api`, the admin routes (assets,
appraisals, offerings, buyouts; audited, four-eyes where money moves) in `admin_api`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse

from pull.identity.deps import ActiveUser, CurrentUser
from pull.kit.db import SessionDep, session_scope
from pull.kit.idempotency import IdempotencyKeyHeader, run_idempotent
from pull.kit.pagination import (
    clamp_limit,
    created_before,
    created_next,
)
from pull.rwa import service
from pull.rwa.admin_api import router as admin_router
from pull.rwa.deps import ERRORS, MONEY, money, relaxed, subscribe_gate
from pull.rwa.schemas import (
    AssetDetail,
    AssetPage,
    AssetState,
    BuyoutRead,
    Category,
    ListingPage,
    OfferingRead,
    Ownership,
    PurchaseRead,
    PurchaseRequest,
    SubscribeRequest,
    SubscriptionPage,
    SubscriptionRead,
    VoteRequest,
)
from pull.rwa.subscription_batcher import SubscriptionRequest, scope_of, subscription_batcher_of
from pull.rwa.trading_api import router as trading_router

router = APIRouter(prefix="/api/v1/rwa", tags=["rwa"], responses=ERRORS)


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
    responses=MONEY,
)
async def subscribe(
    offering_id: uuid.UUID,
    body: SubscribeRequest,
    user: ActiveUser,
    key: IdempotencyKeyHeader,
    request: Request,
) -> JSONResponse:
    state = request.app.state
    if state.settings.rwa_subscribe_batch_max > 1:
        # Group commit (subscription_batcher): the request waits for its offering's next
        # batch without a database connection; what the batch does not take (sold out,
        # refused, a replay) is answered on the one-subscription path below.
        stored = await subscription_batcher_of(state).subscribe(
            offering_id,
            SubscriptionRequest(user.id, body.shares, key, body.model_dump(mode="json")),
        )
        if stored is not None:
            return JSONResponse(stored, status_code=status.HTTP_201_CREATED)
    async with subscribe_gate(state), session_scope(state.sessionmaker) as session:
        prepared: list[service.PreparedSubscription] = []

        async def handler() -> SubscriptionRead:
            found = await service.prepare_subscription(
                session=session, user_id=user.id, offering_id=offering_id, shares=body.shares
            )
            prepared.append(found)
            return found.read

        async def reserve() -> None:
            # Last, after the stored response: the offering's row lock is held only to the
            # commit.
            await prepared[0].reserve()

        result = await run_idempotent(
            session,
            owner=str(user.id),
            scope=scope_of(offering_id),
            key=key,
            request=body.model_dump(mode="json"),
            status_code=201,
            handler=handler,
            finish=reserve,
        )
    return result.response()


@router.post(
    "/purchase",
    response_model=PurchaseRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=money,
    summary="Buy from a listing (Idempotency-Key): a subscription to the asset's open offering, "
    "or for an asset trading an immediate-or-cancel buy up to max_price_cents",
    responses=MONEY,
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


def routers() -> list[APIRouter]:
    return [router, trading_router, admin_router]
