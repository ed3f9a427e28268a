"""Kalshi's error shape `{"error": {"code", "message", "details"}}` and the handlers that
produce it for every failure of the Trade API."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pull.exchange.kalshi.schemas import (
    BatchItemError,
    ErrorResponse,
    KalshiError,
)
from pull.kit.errors import AppError, code_for_status

log = logging.getLogger("pull.kalshi")

# --- errors -----------------------------------------------------------------------------------


def _details(value: Any) -> dict[str, Any] | None:
    """Kalshi's SDK reads `details` as an object: lists and scalars are wrapped."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {"errors": value}
    return {"value": value}


def kalshi_status(status_code: int) -> int:
    # Kalshi answers malformed or invalid input with 400; PULL's 422 becomes 400 here.
    return 400 if status_code == 422 else status_code


def kalshi_error(
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(
        error=KalshiError(code=code, message=message, details=_details(details))
    ).model_dump()
    return JSONResponse(body, status_code=kalshi_status(status_code), headers=headers)


def batch_error(exc: AppError) -> BatchItemError:
    inner = KalshiError(code=exc.code, message=exc.message, details=_details(exc.details))
    return BatchItemError(
        code=inner.code, message=inner.message, details=inner.details, error=inner
    )


def _validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "loc": list(err.get("loc", ())),
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in errors
    ]


def install_error_handlers(app: FastAPI) -> None:
    async def app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return kalshi_error(exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else code_for_status(exc.status_code)
        headers = dict(exc.headers) if exc.headers else None
        return kalshi_error(
            exc.status_code, code_for_status(exc.status_code), message, None, headers
        )

    async def request_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = _validation_details(exc.errors())
        return kalshi_error(400, "INVALID_PARAMETERS", "Invalid request", details)

    async def model_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ValidationError)
        details = _validation_details(exc.errors(include_url=False))
        return kalshi_error(400, "INVALID_PARAMETERS", "Invalid request", details)

    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        rid = request.scope.get("state", {}).get("request_id")
        log.exception("unhandled error", extra={"request_id": rid})
        return kalshi_error(500, "INTERNAL_ERROR", "Internal server error")

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, request_validation)
    app.add_exception_handler(ValidationError, model_validation)
    app.add_exception_handler(Exception, unhandled)
