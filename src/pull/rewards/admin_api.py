"""Rewards administration: rules, catalog, stock, adjustments, refunds, reversals, jobs.
Every change is written to the audit log; adjustments above the threshold need a second admin."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status

from pull.identity import service as identity
from pull.identity.deps import AdminUser, request_meta
from pull.identity.schemas import RequestMeta
from pull.kit.db import SessionDep, utcnow
from pull.kit.ratelimit import general
from pull.rewards import earning, leaderboard, points, redemption, service
from pull.rewards.schemas import (
    AdjustmentCreate,
    AdjustmentList,
    AdjustmentRead,
    ItemList,
    ItemRead,
    ItemUpdate,
    ItemWrite,
    MaintenanceRead,
    RedemptionRead,
    ReversalList,
    ReversalRead,
    ReversalRequest,
    RuleCreate,
    RuleList,
    RuleRead,
    RuleWrite,
    StockChange,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    403: {"description": "Administrators only"},
    429: {"description": "Rate limited"},
}
router = APIRouter(
    prefix="/api/admin/rewards",
    tags=["admin"],
    responses=_ERRORS,
    dependencies=[Depends(general)],
)
Meta = Annotated[RequestMeta, Depends(request_meta)]


def _audit(
    session: Any, meta: RequestMeta, actor: uuid.UUID, action: str, resource: str, **details: Any
) -> None:
    identity.record_audit(
        session,
        action=f"rewards.{action}",
        meta=meta,
        actor_id=actor,
        resource=resource,
        details={k: v for k, v in details.items() if v is not None} or None,
    )


# --- rules ----------------------------------------------------------------------------------


@router.get("/rules", response_model=RuleList, summary="Current earning rules")
async def list_rules(
    admin: AdminUser,
    session: SessionDep,
    key: Annotated[str | None, Query(max_length=64, description="All versions of one rule")] = None,
) -> RuleList:
    rows = await earning.list_rules(session=session, key=key)
    return RuleList(items=[RuleRead.model_validate(r) for r in rows])


@router.post(
    "/rules",
    response_model=RuleRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create an earning rule (version 1)",
    responses={422: {"description": "INVALID_RULE or RULE_EXISTS"}},
)
async def create_rule(
    body: RuleCreate, admin: AdminUser, session: SessionDep, meta: Meta
) -> RuleRead:
    row = await earning.create_rule(session=session, data=body, actor_id=admin.id)
    _audit(session, meta, admin.id, "rule_created", f"rewards_rule:{row.key}", version=1)
    return RuleRead.model_validate(row)


@router.put(
    "/rules/{key}",
    response_model=RuleRead,
    summary="Change a rule: a new version (history keeps the old one)",
    responses={404: {"description": "RULE_NOT_FOUND"}, 422: {"description": "INVALID_RULE"}},
)
async def update_rule(
    key: str, body: RuleWrite, admin: AdminUser, session: SessionDep, meta: Meta
) -> RuleRead:
    row = await earning.update_rule(session=session, key=key, data=body, actor_id=admin.id)
    _audit(session, meta, admin.id, "rule_changed", f"rewards_rule:{key}", version=row.version)
    return RuleRead.model_validate(row)


# --- catalog and stock ----------------------------------------------------------------------


@router.get("/catalog", response_model=ItemList, summary="Every catalog item, live or not")
async def list_items(admin: AdminUser, session: SessionDep) -> ItemList:
    rows = await redemption.all_items(session=session)
    return ItemList(items=[ItemRead.model_validate(r) for r in rows])


@router.post(
    "/catalog",
    response_model=ItemRead,
    status_code=status.HTTP_201_CREATED,
    summary="Add a catalog item",
    responses={422: {"description": "INVALID_ITEM"}},
)
async def create_item(
    body: ItemWrite, admin: AdminUser, session: SessionDep, meta: Meta
) -> ItemRead:
    row = await redemption.create_item(session=session, data=body)
    _audit(session, meta, admin.id, "item_created", f"rewards_item:{row.id}", kind=row.kind)
    return ItemRead.model_validate(row)


@router.patch(
    "/catalog/{item_id}",
    response_model=ItemRead,
    summary="Change a catalog item (price, window, active)",
    responses={404: {"description": "REWARD_NOT_FOUND"}},
)
async def update_item(
    item_id: uuid.UUID, body: ItemUpdate, admin: AdminUser, session: SessionDep, meta: Meta
) -> ItemRead:
    row = await redemption.update_item(session=session, item_id=item_id, data=body)
    _audit(
        session,
        meta,
        admin.id,
        "item_changed",
        f"rewards_item:{row.id}",
        changes=body.model_dump(mode="json", exclude_unset=True),
    )
    return ItemRead.model_validate(row)


@router.post(
    "/catalog/{item_id}/stock",
    response_model=ItemRead,
    summary="Add to (or remove from) an item's stock",
    responses={
        404: {"description": "REWARD_NOT_FOUND"},
        409: {"description": "UNLIMITED_STOCK or STOCK_NEGATIVE"},
    },
)
async def change_stock(
    item_id: uuid.UUID,
    body: StockChange,
    admin: AdminUser,
    session: SessionDep,
    meta: Meta,
) -> ItemRead:
    row = await redemption.change_stock(session=session, item_id=item_id, delta=body.delta)
    _audit(session, meta, admin.id, "stock_changed", f"rewards_item:{row.id}", delta=body.delta)
    return ItemRead.model_validate(row)


# --- adjustments ----------------------------------------------------------------------------


@router.get("/adjustments", response_model=AdjustmentList, summary="Manual adjustments")
async def list_adjustments(
    admin: AdminUser,
    session: SessionDep,
    status_: Annotated[
        Literal["pending_approval", "applied", "rejected"] | None, Query(alias="status")
    ] = None,
) -> AdjustmentList:
    rows = await service.list_adjustments(session=session, status=status_)
    return AdjustmentList(items=[AdjustmentRead.model_validate(r) for r in rows])


@router.post(
    "/adjustments",
    response_model=AdjustmentRead,
    status_code=status.HTTP_201_CREATED,
    summary="Credit or debit a user's points (above the threshold: waits for a second admin)",
    responses={404: {"description": "USER_NOT_FOUND"}},
)
async def create_adjustment(
    body: AdjustmentCreate, admin: AdminUser, session: SessionDep, request: Request, meta: Meta
) -> AdjustmentRead:
    row = await service.create_adjustment(
        session=session,
        data=body,
        actor_id=admin.id,
        settings=request.app.state.settings,
        meta=meta,
    )
    return AdjustmentRead.model_validate(row)


async def _decide(
    adjustment_id: uuid.UUID,
    admin: Any,
    session: Any,
    request: Request,
    meta: RequestMeta,
    approve: bool,
) -> AdjustmentRead:
    row = await service.decide_adjustment(
        session=session,
        adjustment_id=adjustment_id,
        actor_id=admin.id,
        approve=approve,
        settings=request.app.state.settings,
        meta=meta,
    )
    return AdjustmentRead.model_validate(row)


_DECIDE: dict[int | str, dict[str, Any]] = {
    403: {"description": "FOUR_EYES_REQUIRED: the requester cannot decide"},
    404: {"description": "ADJUSTMENT_NOT_FOUND"},
    409: {"description": "INVALID_STATE"},
}


@router.post(
    "/adjustments/{adjustment_id}/approve",
    response_model=AdjustmentRead,
    summary="Approve (and apply) another admin's adjustment",
    responses=_DECIDE,
)
async def approve_adjustment(
    adjustment_id: uuid.UUID, admin: AdminUser, session: SessionDep, request: Request, meta: Meta
) -> AdjustmentRead:
    return await _decide(adjustment_id, admin, session, request, meta, True)


@router.post(
    "/adjustments/{adjustment_id}/reject",
    response_model=AdjustmentRead,
    summary="Reject another admin's adjustment",
    responses=_DECIDE,
)
async def reject_adjustment(
    adjustment_id: uuid.UUID, admin: AdminUser, session: SessionDep, request: Request, meta: Meta
) -> AdjustmentRead:
    return await _decide(adjustment_id, admin, session, request, meta, False)


# --- redemptions, reversals, jobs -----------------------------------------------------------


@router.post(
    "/redemptions/{redemption_id}/refund",
    response_model=RedemptionRead,
    summary="Refund a fulfilled redemption: points back into their original lots, stock back",
    responses={
        404: {"description": "REDEMPTION_NOT_FOUND"},
        409: {"description": "INVALID_STATE"},
    },
)
async def refund_redemption(
    redemption_id: uuid.UUID, admin: AdminUser, session: SessionDep, meta: Meta
) -> RedemptionRead:
    row = await redemption.refund(session=session, redemption_id=redemption_id, now=utcnow())
    _audit(session, meta, admin.id, "redemption_refunded", f"rewards_redemption:{row.id}")
    return redemption.read(row)


@router.post(
    "/reversals",
    response_model=ReversalList,
    summary="Reverse every earning of a source (e.g. a busted trade's order:<id>)",
)
async def reverse(
    body: ReversalRequest, admin: AdminUser, session: SessionDep, meta: Meta
) -> ReversalList:
    done = await points.reverse_source(session=session, source_ref=body.source_ref, now=utcnow())
    _audit(session, meta, admin.id, "earning_reversed", body.source_ref, lots=len(done))
    return ReversalList(
        items=[
            ReversalRead(lot_id=r.lot_id, taken=r.taken, unrecovered=r.unrecovered) for r in done
        ]
    )


@router.post(
    "/leaderboard/rebuild",
    summary="Recompute the current leaderboards from the ledger",
)
async def rebuild_leaderboard(
    admin: AdminUser, session: SessionDep, request: Request
) -> dict[str, int]:
    return await leaderboard.rebuild(session=session, redis=request.app.state.redis, now=utcnow())


@router.post(
    "/maintenance",
    response_model=MaintenanceRead,
    summary="Run one batch of expiry, expiry warnings and tier reviews now",
)
async def maintenance(admin: AdminUser, session: SessionDep, request: Request) -> MaintenanceRead:
    settings = request.app.state.settings
    now = utcnow()
    return MaintenanceRead(
        expired_lots=await service.expire_batch(session=session, now=now),
        warned_lots=await service.warn_batch(session=session, settings=settings, now=now),
        reviewed_profiles=await service.review_batch(session=session, settings=settings, now=now),
    )
