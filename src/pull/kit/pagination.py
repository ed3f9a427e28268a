"""Opaque cursor pagination: `{"items": [...], "cursor": "..."}`.

A cursor encodes the sort key of the last item returned (keyset pagination), so pages stay
stable while rows are inserted and cost the same at any depth.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from pull.kit.errors import BadRequest

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    cursor: str | None = Field(None, description="Pass as `cursor` to get the next page")


def encode_cursor(values: dict[str, Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("Invalid cursor", code="INVALID_CURSOR") from exc
    if not isinstance(value, dict) or not _fits(value):
        raise BadRequest("Invalid cursor", code="INVALID_CURSOR")
    return value


INT64 = 2**63


def _fits(value: Any) -> bool:
    """Numbers a database column can take (a forged cursor may carry any JSON number)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return -INT64 <= value < INT64
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_fits(v) for v in value)
    if isinstance(value, dict):
        return all(_fits(v) for v in value.values())
    return False


def created_before(cursor: str | None) -> tuple[dt.datetime, uuid.UUID] | None:
    """The (created_at, id) key a newest-first cursor names; a forged one is 400, not 500."""
    value = decode_cursor(cursor)
    if value is None:
        return None
    try:
        at = dt.datetime.fromisoformat(value["t"])
        if at.tzinfo is None:
            raise ValueError("naive time")
        return at, uuid.UUID(value["id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest("Invalid cursor", code="INVALID_CURSOR") from exc


def created_next(items: list[Any], size: int) -> str | None:
    """The cursor after a newest-first page fetched with `size + 1` rows, or None at the end."""
    if len(items) <= size:
        return None
    last = items[size - 1]
    return encode_cursor({"t": last.created_at.isoformat(), "id": str(last.id)})


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1 or limit > MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}", code="INVALID_LIMIT")
    return limit
