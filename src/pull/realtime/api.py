"""Routes of the live feeds. The WebSocket endpoints are plain Starlette routes: the app's
HTTP dependencies (request body checks) do not apply to a socket."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import WebSocketRoute

from pull.realtime import kalshi_ws, stream


def install_live_routes(app: FastAPI) -> None:
    app.router.routes.append(WebSocketRoute(kalshi_ws.PATH, kalshi_ws.kalshi_ws))
    app.router.routes.append(WebSocketRoute(stream.PATH, stream.stream_ws))
    app.include_router(stream.router)
