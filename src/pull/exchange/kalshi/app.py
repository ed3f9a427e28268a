"""Kalshi-compatible Trade API v2 under `/trade-api/v2`: a second, public surface over the same
exchange, so that bots written against Kalshi (and Kalshi's own `kalshi-python` SDK) trade on
PULL by changing one URL.

This layer only translates: paths, query parameters, field names, units (cents next to
`*_dollars` strings, counts next to `*_fp` strings), enums, cursors and the error shape
`{"error": {"code", "message", "details"}}` are Kalshi's; every rule is the exchange service's.
It is its own ASGI sub-application (own error handlers, own OpenAPI at
`/trade-api/v2/openapi.json`, docs at `/trade-api/v2/docs`) sharing the parent app's state
(database, Redis, rate limiter). See docs/kalshi-compatibility.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from pull.exchange.kalshi.api_keys import api_keys
from pull.exchange.kalshi.errors import install_error_handlers, kalshi_error
from pull.exchange.kalshi.markets import public
from pull.exchange.kalshi.orders_v2 import router as orders_v2_router
from pull.exchange.kalshi.portfolio import portfolio
from pull.exchange.kalshi.schemas import (
    ErrorResponse,
)
from pull.exchange.kalshi.units import PREFIX
from pull.kit.routing import index_routes
from pull.kit.text import reject_unsafe_text

# --- what PULL does not offer ------------------------------------------------------------------

# Kalshi features without a PULL counterpart: a clear 501 in Kalshi's error shape.
UNSUPPORTED: dict[str, str] = {
    "/communications": "RFQs and quotes (communications)",
    "/multivariate_event_collections": "multivariate event collections",
    "/portfolio/order_groups": "order groups",
    "/portfolio/orders/queue_positions": "batch queue positions",
    "/portfolio/subaccounts": "subaccounts",
    "/milestones": "milestones",
    "/structured_targets": "structured targets",
    "/historical": "historical data (everything is served by the live endpoints)",
    "/live_data": "live data",
    "/incentive_programs": "incentive programs",
    "/fcm": "FCM endpoints",
    "/account": "account API limits",
    "/search": "search",
    "/exchange/user_data_timestamp": "user data timestamps",
    "/events/multivariate": "multivariate events",
    "/markets/candlesticks": "batch candlesticks",
    "/markets/orderbooks": "batch order books",
    "/series/fee_changes": "fee change schedules",
}
_ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _not_offered(what: str) -> Callable[[], Awaitable[JSONResponse]]:
    async def endpoint() -> JSONResponse:
        return kalshi_error(501, "NOT_SUPPORTED", f"PULL does not offer {what}", {"feature": what})

    return endpoint


def _unsupported_router() -> APIRouter:
    """Included before the real routes, so `/events/multivariate` is not read as an event."""
    router = APIRouter(include_in_schema=False)
    for prefix, what in UNSUPPORTED.items():
        for path in (prefix, prefix + "/{rest:path}"):
            router.add_api_route(path, _not_offered(what), methods=_ANY_METHOD)
    router.add_api_route(
        "/events/{event_ticker}/metadata", _not_offered("event metadata"), methods=["GET"]
    )
    return router


# --- the sub-application -------------------------------------------------------------------------


def create_trade_api(parent: FastAPI) -> FastAPI:
    """The Kalshi-compatible API as an ASGI app sharing `parent`'s state."""
    sub = FastAPI(
        title="PULL Trade API v2 (Kalshi-compatible)",
        version="2",
        description=(
            "Kalshi's Trade API v2 on PULL's exchange: Kalshi's paths, fields, units and "
            "RSA-PSS request signing (KALSHI-ACCESS-KEY, -TIMESTAMP, -SIGNATURE). Errors come "
            'as `{"error": {"code", "message", "details"}}`. See docs/kalshi-compatibility.md.'
        ),
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(reject_unsafe_text)],
        responses={
            400: {"model": ErrorResponse},
            401: {"model": ErrorResponse},
            404: {"model": ErrorResponse},
            409: {"model": ErrorResponse},
            429: {"model": ErrorResponse},
        },
    )
    sub.state = parent.state
    install_error_handlers(sub)

    @sub.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=PREFIX + "/openapi.json",
            title="PULL Trade API v2 docs",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )

    sub.include_router(_unsupported_router())
    sub.include_router(public)
    sub.include_router(portfolio)
    sub.include_router(orders_v2_router)
    sub.include_router(api_keys)
    index_routes(sub.router)
    return sub


class TradeApiFallback:
    """Serves `/trade-api/v2/...` when none of the parent app's own routes matched.

    The sub-application is reached as the parent router's fallback rather than as an ordinary
    mount, so routes the parent declares itself under the same prefix keep precedence. The
    scope is prepared exactly as a `Mount` would prepare it (root_path, route), so metrics see
    `/trade-api/v2/markets/{ticker}`-style route templates.
    """

    def __init__(self, mount: Mount, fallback: ASGIApp) -> None:
        self.mount = mount
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match, child_scope = self.mount.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                scope["route"] = self.mount
                await self.mount.app(scope, receive, send)
                return
        await self.fallback(scope, receive, send)


def install_trade_api(app: FastAPI) -> None:
    mount = Mount(PREFIX, app=create_trade_api(app), name="trade-api-v2")
    app.router.default = TradeApiFallback(mount, app.router.default)
