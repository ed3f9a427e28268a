"""Analytics routes: client events in (Segment/PostHog spec), admin dashboards out."""

from __future__ import annotations

import datetime as dt
import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from pull.analytics import dashboards, warehouse
from pull.analytics.client import Warehouse, run, warehouse_for
from pull.analytics.schemas import (
    BatchRequest,
    FunnelResponse,
    IdentifyMessage,
    MarketsResponse,
    OverviewResponse,
    RetentionResponse,
    RevenueResponse,
    TrackMessage,
    TrackResponse,
)
from pull.analytics.service import accept_messages
from pull.identity.deps import AdminUser, AuthUser, current_user
from pull.kit.db import SessionDep
from pull.kit.ratelimit import general

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    403: {"description": "FORBIDDEN or USER_MISMATCH"},
    422: {"description": "MISSING_IDENTITY, INVALID_TIMESTAMP, BATCH_TOO_LARGE, ..."},
    429: {"description": "Rate limited"},
}
_ADMIN: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    403: {"description": "Administrators only"},
    422: {"description": "INVALID_RANGE"},
    503: {"description": "ANALYTICS_UNAVAILABLE"},
}

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"], responses=_ERRORS)
admin_router = APIRouter(prefix="/api/admin/analytics", tags=["admin"], responses=_ADMIN)
relaxed = [Depends(general)]


async def optional_user(request: Request, session: SessionDep) -> AuthUser | None:
    """The caller when a bearer token is sent (and valid); None for anonymous clients."""
    if not request.headers.get("authorization"):
        return None
    return await current_user(request)


Caller = Annotated[AuthUser | None, Depends(optional_user)]


def _max_batch(request: Request) -> int:
    return int(request.app.state.settings.analytics_track_max_batch)


@router.post("/track", dependencies=relaxed, summary="Record a product event")
async def track(
    body: TrackMessage, request: Request, session: SessionDep, caller: Caller
) -> TrackResponse:
    return await accept_messages(
        session=session,
        messages=[body],
        caller_id=caller.id if caller else None,
        max_batch=_max_batch(request),
    )


@router.post("/identify", dependencies=relaxed, summary="Tie an anonymous id to the user")
async def identify(
    body: IdentifyMessage, request: Request, session: SessionDep, caller: Caller
) -> TrackResponse:
    return await accept_messages(
        session=session,
        messages=[body],
        caller_id=caller.id if caller else None,
        max_batch=_max_batch(request),
    )


@router.post("/batch", dependencies=relaxed, summary="Record many track/identify messages")
async def batch(
    body: BatchRequest, request: Request, session: SessionDep, caller: Caller
) -> TrackResponse:
    return await accept_messages(
        session=session,
        messages=body.batch,
        caller_id=caller.id if caller else None,
        max_batch=_max_batch(request),
    )


# --- admin dashboards -----------------------------------------------------------------------


async def analytics_store(request: Request, response: Response) -> Warehouse:
    """The process's ClickHouse (schema ensured once per app). The answer says which process
    served it and how: `X-Analytics-Process: <pid> <engine|relay|server>` (with chDB one
    process owns the engine and the other workers relay to it)."""
    wh: Warehouse = await run(warehouse_for, request.app.state.settings)
    how = "server" if not wh.embedded else ("relay" if getattr(wh, "relayed", False) else "engine")
    response.headers["X-Analytics-Process"] = f"{os.getpid()} {how}"
    if not getattr(request.app.state, "analytics_schema_ready", False):
        await warehouse.ensure_schema(wh)
        request.app.state.analytics_schema_ready = True
    return wh


Store = Annotated[Warehouse, Depends(analytics_store)]
Start = Annotated[dt.date | None, Query(description="first day (UTC), default end - 29 days")]
End = Annotated[dt.date | None, Query(description="last day (UTC), default today")]


@admin_router.get("/overview", summary="DAU/WAU/MAU, sign-ups, KYC, money in and out, trading")
async def overview(
    admin: AdminUser, wh: Store, start: Start = None, end: End = None
) -> OverviewResponse:
    s, e = dashboards.date_range(start, end)
    return await dashboards.overview(wh, s, e)


@admin_router.get("/funnel", summary="Sign-up to first trade (windowFunnel)")
async def funnel(
    admin: AdminUser,
    wh: Store,
    start: Start = None,
    end: End = None,
    window_seconds: Annotated[int, Query(ge=60, le=90 * 86_400)] = 30 * 86_400,
) -> FunnelResponse:
    s, e = dashboards.date_range(start, end)
    return await dashboards.funnel(wh, s, e, window_seconds)


@admin_router.get("/retention", summary="Weekly sign-up cohorts (retention)")
async def retention(
    admin: AdminUser,
    wh: Store,
    start: Start = None,
    end: End = None,
    weeks: Annotated[int, Query(ge=1, le=12)] = 8,
) -> RetentionResponse:
    s, e = dashboards.date_range(start, end)
    return await dashboards.retention(wh, s, e, weeks)


@admin_router.get("/revenue", summary="Fees by product per day")
async def revenue(
    admin: AdminUser, wh: Store, start: Start = None, end: End = None
) -> RevenueResponse:
    s, e = dashboards.date_range(start, end)
    return await dashboards.revenue(wh, s, e)


@admin_router.get("/markets", summary="Top markets by volume, with traders")
async def markets(
    admin: AdminUser,
    wh: Store,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> MarketsResponse:
    s, e = dashboards.date_range(start, end)
    return await dashboards.markets(wh, s, e, limit)


def routers() -> list[APIRouter]:
    return [router, admin_router]
