"""Typed application errors and the single error envelope.

Services raise `AppError` subclasses; they are mapped to HTTP responses once, here.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("pull.errors")


class AppError(Exception):
    status_code: int = 400
    code: str = "BAD_REQUEST"
    message: str = "Bad request"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.status_code = status_code or self.status_code
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)


class BadRequest(AppError):
    status_code = 400
    code = "BAD_REQUEST"


class Unauthorized(AppError):
    status_code = 401
    code = "UNAUTHORIZED"
    message = "Authentication required"


class Forbidden(AppError):
    status_code = 403
    code = "FORBIDDEN"
    message = "Not allowed"


class NotFound(AppError):
    status_code = 404
    code = "NOT_FOUND"
    message = "Not found"


class Conflict(AppError):
    status_code = 409
    code = "CONFLICT"
    message = "Conflict"


class Unprocessable(AppError):
    status_code = 422
    code = "VALIDATION_ERROR"
    message = "Invalid input"


class TooManyRequests(AppError):
    status_code = 429
    code = "RATE_LIMITED"
    message = "Too many requests"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    message = "Service temporarily unavailable"


_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def code_for_status(status: int) -> str:
    return _STATUS_CODES.get(status, "HTTP_" + str(status))


def error_body(code: str, message: str, details: Any, request_id: str | None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details,
            "request_id": request_id,
        }
    }


def _request_id(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else None


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(code, message, details, _request_id(request)),
        status_code=status,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    async def app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return error_response(
            request, exc.status_code, exc.code, exc.message, exc.details, exc.headers
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else code_for_status(exc.status_code)
        headers = dict(exc.headers) if exc.headers else None
        return error_response(
            request, exc.status_code, code_for_status(exc.status_code), message, None, headers
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [
            {
                "loc": list(err.get("loc", ())),
                "msg": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        return error_response(request, 422, "VALIDATION_ERROR", "Invalid request", details)

    async def overloaded(request: Request, exc: Exception) -> JSONResponse:
        # Every database connection of this process is busy (a hot row, a burst): the request
        # changed nothing, so the client may retry; it is a 503, not a server bug.
        log.warning("database pool exhausted", extra={"request_id": _request_id(request)})
        return error_response(
            request,
            503,
            "SERVICE_OVERLOADED",
            "The service is busy; nothing was changed, retry shortly",
            headers={"Retry-After": "1"},
        )

    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"request_id": _request_id(request)})
        return error_response(request, 500, "INTERNAL_ERROR", "Internal server error")

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(PoolTimeoutError, overloaded)
    app.add_exception_handler(Exception, unhandled)
