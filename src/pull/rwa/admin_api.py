"""RWA admin routes: assets, appraisals, offerings (create, open with four eyes, cancel),
buyout offers and their settlement; every change audited."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from pull.identity.deps import AdminUser
from pull.kit.db import SessionDep
from pull.rwa import service
from pull.rwa.deps import ERRORS, Graders
from pull.rwa.schemas import (
    AssetCreate,
    AssetDetail,
    BuyoutCreate,
    BuyoutRead,
    OfferingCreate,
    OfferingRead,
    ValuationCreate,
    ValuationRead,
)

router = APIRouter(prefix="/api/admin/rwa", tags=["admin"], responses=ERRORS)


class CancelRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=200)


@router.post(
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


@router.post(
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


@router.post(
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


@router.post(
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
    offering_id: uuid.UUID, admin: AdminUser, session: SessionDep, request: Request
) -> OfferingRead:
    return await service.open_offering(
        session=session,
        actor_id=admin.id,
        offering_id=offering_id,
        closing_soon_seconds=request.app.state.settings.rwa_closing_soon_seconds,
    )


@router.post(
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


@router.post(
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


@router.post(
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
