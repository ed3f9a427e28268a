"""RWA routes: assets, search, listings, ownership, offerings and subscriptions; admin routes
for assets, appraisals and offerings (audited; opening an offering is four-eyes)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pull.identity.deps import ActiveUser, AdminUser, CurrentUser
from pull.kit.db import SessionDep
from pull.kit.errors import BadRequest
from pull.kit.idempotency import IdempotencyKeyHeader, run_idempotent
from pull.kit.pagination import clamp_limit, decode_cursor, encode_cursor
from pull.kit.ratelimit import general, payment_routes
from pull.rwa import service
from pull.rwa.providers import Grader, graders_for
from pull.rwa.schemas import (
    AssetCreate,
    AssetDetail,
    AssetPage,
    AssetState,
    Category,
    ListingPage,
    OfferingCreate,
    OfferingRead,
    Ownership,
    PurchaseRead,
    PurchaseRequest,
    SubscribeRequest,
    SubscriptionPage,
    SubscriptionRead,
    ValuationCreate,
    ValuationRead,
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


def _before(cursor: str | None) -> tuple[dt.datetime, uuid.UUID] | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value["t"]), uuid.UUID(value["id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest("Invalid cursor", code="INVALID_CURSOR") from exc


def _next(items: list[Any], size: int) -> str | None:
    if len(items) <= size:
        return None
    last = items[size - 1]
    return encode_cursor({"t": last.created_at.isoformat(), "id": str(last.id)})


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
        before=_before(cursor),
        limit=size + 1,
    )
    return AssetPage(items=items[:size], cursor=_next(items, size))


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
        session=session, user_id=user.id, before=_before(cursor), limit=size + 1
    )
    return SubscriptionPage(items=items[:size], cursor=_next(items, size))


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
    summary="Buy from a listing (Idempotency-Key): subscribes to the asset's open offering",
    responses=_MONEY,
)
async def purchase(
    body: PurchaseRequest, user: ActiveUser, session: SessionDep, key: IdempotencyKeyHeader
) -> JSONResponse:
    result = await run_idempotent(
        session,
        owner=str(user.id),
        scope="POST /api/v1/rwa/purchase",
        key=key,
        request=body.model_dump(mode="json"),
        status_code=201,
        handler=lambda: service.purchase(
            session=session, user_id=user.id, asset_id=body.asset_id, shares=body.shares
        ),
    )
    return result.response()


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


def routers() -> list[APIRouter]:
    return [router, admin_router]
