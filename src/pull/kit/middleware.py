"""One pure-ASGI middleware for what every request needs.

Request id, access log, metrics, body limit and security headers live together so that a
request pays for one wrapper instead of five.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from fastapi import HTTPException
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pull.kit.errors import error_body
from pull.kit.metrics import HTTP_DURATION, HTTP_IN_PROGRESS, HTTP_REQUESTS

access_log = logging.getLogger("pull.access")

_DOCS_PATHS = ("/docs", "/redoc", "/static/docs")
_CSP_API = "default-src 'none'; frame-ancestors 'none'"
# Swagger UI needs its own script, style and inline bootstrap; assets are served locally.
_CSP_DOCS = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'"
)


class PayloadTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body exceeds {limit} bytes")


def route_template(scope: Scope) -> str:
    """The matched route's template, prefixed by the mount it sits under (root_path).

    When the route is still a `Mount` nothing inside the mounted application matched (its own
    404): the label is "unmatched", never the prefix twice or the raw path.
    """
    route = scope.get("route")
    if isinstance(route, Mount):
        return "unmatched"
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return str(scope.get("root_path", "")) + path if scope.get("root_path") else path
    return "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, body_limit: int, hsts: bool) -> None:
        self.app = app
        self.body_limit = body_limit
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = secrets.token_hex(12)
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status_holder = {"status": 500, "started": False}
        limit = self.body_limit
        path: str = scope["path"]

        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_error(
                send,
                413,
                "PAYLOAD_TOO_LARGE",
                f"Request body exceeds {limit} bytes",
                request_id,
                self._security_headers(path),
            )
            self._record(scope, 413, start, request_id)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(limit)
            return message

        security = self._security_headers(path)
        extra_headers = [*security, (b"x-request-id", request_id.encode())]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                headers = list(message.get("headers", []))
                headers.extend(extra_headers)
                message = {**message, "headers": headers}
            await send(message)

        HTTP_IN_PROGRESS.inc()
        try:
            await self.app(scope, limited_receive, send_wrapper)
        except PayloadTooLarge:
            if not status_holder["started"]:
                await _send_error(
                    send,
                    413,
                    "PAYLOAD_TOO_LARGE",
                    f"Request body exceeds {limit} bytes",
                    request_id,
                    security,
                )
                status_holder["status"] = 413
        finally:
            HTTP_IN_PROGRESS.dec()
            self._record(scope, int(status_holder["status"]), start, request_id)

    def _security_headers(self, path: str) -> list[tuple[bytes, bytes]]:
        csp = _CSP_DOCS if path.startswith(_DOCS_PATHS) else _CSP_API
        headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
            (b"content-security-policy", csp.encode()),
        ]
        if self.hsts:
            headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
        return headers

    @staticmethod
    def _record(scope: Scope, status: int, start: float, request_id: str) -> None:
        duration = time.perf_counter() - start
        route = route_template(scope)
        method = scope["method"]
        HTTP_REQUESTS.labels(method, route, str(status)).inc()
        HTTP_DURATION.labels(method, route).observe(duration)
        state: dict[str, Any] = scope.get("state", {})
        access_log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(duration * 1000, 2),
                "user_id": state.get("user_id"),
            },
        )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    request_id: str,
    headers: list[tuple[bytes, bytes]],
) -> None:
    body = json.dumps(error_body(code, message, None, request_id)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
