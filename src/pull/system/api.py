"""Health endpoints the runbook and the orchestrators probe."""

from __future__ import annotations

import hmac
import time
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from pull import __version__
from pull.kit.db import SessionDep, utcnow
from pull.kit.errors import error_response
from pull.kit.metrics import render_latest, track_pool
from pull.kit.ratelimit import general
from pull.system.service import check_dependencies

router = APIRouter(tags=["health"])


def _now() -> str:
    return utcnow().isoformat()


@router.get("/health", summary="Basic health")
async def health() -> dict[str, str]:
    return {"status": "healthy", "timestamp": _now()}


@router.get("/health/live", summary="Liveness: the process serves requests")
async def live() -> dict[str, str]:
    return {"status": "alive", "timestamp": _now()}


async def _checks(request: Request) -> list[Any]:
    state = request.app.state
    return await check_dependencies(
        engine=state.engine,
        redis=state.redis,
        temporal=None,
        temporal_connect=state.temporal.get,
        timeout=state.settings.health_timeout_seconds,
    )


@router.get(
    "/health/ready",
    summary="Readiness: PostgreSQL, Redis and Temporal each answer in time",
    responses={503: {"description": "A dependency failed"}},
)
async def ready(request: Request) -> JSONResponse:
    checks = await _checks(request)
    failed = [c.name for c in checks if c.status == "fail"]
    body: dict[str, Any] = {
        "status": "ready" if not failed else "not_ready",
        "timestamp": _now(),
        "checks": {c.name: c.status for c in checks},
    }
    if failed:
        body["failed"] = failed
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


@router.get(
    "/health/detailed",
    summary="Per-dependency detail; needs X-Internal-Key, else the basic body",
)
async def detailed(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    given = request.headers.get("x-internal-key", "")
    if not given or not hmac.compare_digest(given.encode(), settings.internal_api_key.encode()):
        return JSONResponse({"status": "healthy", "timestamp": _now()})
    checks = await _checks(request)
    worst = "pass"
    for c in checks:
        if c.status == "fail" or (c.status == "warn" and worst == "pass"):
            worst = c.status
    overall = {"pass": "healthy", "warn": "degraded", "fail": "unhealthy"}[worst]
    return JSONResponse(
        {
            "status": overall,
            "timestamp": _now(),
            "version": __version__,
            "environment": settings.environment.value,
            "uptime_seconds": round(time.monotonic() - request.app.state.started_at, 1),
            "checks": {c.name: c.as_dict() for c in checks},
        }
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    include_in_schema=True,
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return error_response(
                request,
                401,
                "UNAUTHORIZED",
                "metrics need the scrape token",
                headers={"WWW-Authenticate": "Bearer"},
            )
    track_pool(request.app.state.engine)
    return Response(render_latest(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get(
    "/api/v1/status",
    summary="Service status with the database clock (one database read)",
    dependencies=[Depends(general)],
)
async def status(session: SessionDep) -> dict[str, str]:
    db_time = await session.scalar(text("SELECT now()"))
    return {"status": "ok", "version": __version__, "database_time": str(db_time)}
