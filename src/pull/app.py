"""The ASGI application: wiring only; behaviour lives in the domain modules."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from pull import __version__
from pull.analytics.api import routers as analytics_routers
from pull.analytics.service import IngestRunner, ingest_process
from pull.brokerage.api import routers as brokerage_routers
from pull.config import Settings, get_settings
from pull.email.api import routers as email_routers
from pull.exchange.api import routers as exchange_routers
from pull.exchange.kalshi import install_trade_api
from pull.exchange.read_cache import install as install_read_cache
from pull.funding.api import routers as funding_routers
from pull.identity.api import routers as identity_routers
from pull.identity.local_auth import LocalAuthCache
from pull.kit.db import make_engine, make_sessionmaker
from pull.kit.errors import install_error_handlers
from pull.kit.heap import freeze_startup_heap
from pull.kit.invalidation import Invalidations
from pull.kit.logging import configure_sentry
from pull.kit.middleware import RequestContextMiddleware
from pull.kit.ratelimit import RateLimiter
from pull.kit.redis import make_redis
from pull.kit.routing import index_routes
from pull.kit.streams import clear_publisher as clear_stream_publisher
from pull.kit.streams import set_publisher as set_stream_publisher
from pull.kit.temporal import TemporalConnector
from pull.kit.text import reject_unsafe_text
from pull.kyc.api import routers as kyc_routers
from pull.ledger.api import routers as ledger_routers
from pull.messaging.api import routers as messaging_routers
from pull.messaging.service import close_homeservers
from pull.notifications.api import routers as notifications_routers
from pull.portfolio.api import routers as portfolio_routers
from pull.realtime.api import install_live_routes
from pull.realtime.state import LiveState
from pull.rewards.api import routers as rewards_routers
from pull.rewards.read_cache import install as install_rewards_cache
from pull.rwa.api import routers as rwa_routers
from pull.system.api import router as system_router

RATE_HEADERS = [
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    configure_sentry(settings.sentry_dsn, settings.environment.value, __version__)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.started_at = time.monotonic()
        app.state.engine = make_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        app.state.redis = make_redis(settings.redis_url, max_connections=settings.redis_pool_max)
        app.state.sessionmaker = make_sessionmaker(app.state.engine, redis=app.state.redis)
        await _warm_redis_pool(app.state.redis, settings.redis_pool_min)
        app.state.rate_limiter = RateLimiter(app.state.redis, enabled=settings.rate_limit_enabled)
        # process-memory caches kept true by Redis pub/sub (kit.invalidation): the auth
        # check's first level, and the market reads' versions (exchange.read_cache)
        app.state.invalidations = Invalidations(app.state.redis)
        app.state.auth_local = LocalAuthCache(app.state.invalidations)
        install_read_cache(app.state.invalidations)
        install_rewards_cache(app.state.invalidations)  # balances and boards (rewards.read_cache)
        app.state.invalidations.start()
        set_stream_publisher(app.state.redis)  # book commands publish to the live feeds
        app.state.live = LiveState(settings, app.state.sessionmaker)
        app.state.live.start()
        app.state.temporal = TemporalConnector(
            settings.temporal_address, settings.temporal_namespace
        )
        analytics = None
        if ingest_process(settings) == "api":  # chDB: the API process owns the engine
            analytics = IngestRunner(settings, app.state.sessionmaker)
            analytics.start()
        try:
            yield
        finally:
            if analytics is not None:
                await analytics.stop()
            await app.state.live.stop()
            await app.state.invalidations.stop()
            clear_stream_publisher(app.state.redis)
            await close_homeservers()
            await app.state.redis.aclose()
            await app.state.engine.dispose()

    app = FastAPI(
        title="PULL API",
        version=__version__,
        description="PULL super-app backend. Errors always come as "
        '`{"error": {"code", "message", "details", "request_id"}}`.',
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(reject_unsafe_text)],
    )
    install_error_handlers(app)

    static_dir = files("fastapi_offline").joinpath("static")
    app.mount("/static/docs", StaticFiles(directory=str(static_dir)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="PULL API docs",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )

    app.include_router(system_router)
    for router in _domain_routers():
        app.include_router(router)
    install_trade_api(app)  # /trade-api/v2: Kalshi-compatible, its own errors and OpenAPI
    install_live_routes(app)  # /trade-api/ws/v2 and /api/v1/stream (WebSocket, SSE)

    app.add_middleware(
        RequestContextMiddleware,
        body_limit=settings.body_limit,
        hsts=settings.environment.value == "production",
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origin_list,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Idempotency-Key",
            "X-Internal-Key",
            "KALSHI-ACCESS-KEY",
            "KALSHI-ACCESS-TIMESTAMP",
            "KALSHI-ACCESS-SIGNATURE",
        ],
        expose_headers=RATE_HEADERS,
        max_age=600,
    )
    index_routes(app.router)  # dispatch cost independent of the number of routes (kit.routing)
    return app


def served_app() -> FastAPI:
    """The app `pull api` serves (uvicorn's factory, once per worker process): `create_app`,
    then everything built so far (modules, routes, schemas: ~420,000 objects) moved out of the
    cyclic garbage collector's sight with `gc.freeze()`. Without it every full collection walks
    them all, and a request that allocates a lot (the 1,000-holding portfolio) triggers one
    every few requests: 40-90 ms of CPU per request in GC alone (docs/performance.md,
    Portfolio). Not in `create_app`: tests build many apps in one process.

    The young generation's threshold is raised from 700 to 50,000 container objects: a
    1,000-holding view holds a few thousand dicts at its peak, which at 700 ran ~7 young and
    ~0.7 middle collections per request (~1-3 ms of CPU, measured with `gc.callbacks`); what a
    request allocates is freed by reference counting when it ends, so at 50,000 a collection is
    rare and garbage in cycles still goes within a few requests' worth of allocations."""
    app = create_app()
    freeze_startup_heap()
    return app


async def _warm_redis_pool(redis: Redis, size: int) -> None:
    """Open REDIS_POOL_MIN connections up front; a Redis that is down only makes us not ready."""
    with contextlib.suppress(Exception):
        await asyncio.gather(*(redis.ping() for _ in range(max(size, 0))))


def _domain_routers() -> list[APIRouter]:
    """Each domain module's routers; modules add themselves here as they land."""
    return [
        *identity_routers(),
        *kyc_routers(),
        *ledger_routers(),
        *exchange_routers(),
        *funding_routers(),
        *rewards_routers(),
        *rwa_routers(),
        *brokerage_routers(),
        *analytics_routers(),
        *portfolio_routers(),
        *notifications_routers(),
        *email_routers(),
        *messaging_routers(),
    ]
