"""Text that PostgreSQL (and UTF-8) cannot hold is refused at the door.

A NUL character cannot be stored in a PostgreSQL text column, and an unpaired UTF-16 surrogate
(`"\\ud800"` in JSON) cannot be encoded as UTF-8: either would otherwise surface as a 500 deep
in a query. This dependency runs on every route and answers 422 `INVALID_TEXT` instead, for
the path, the query string and JSON bodies alike.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request

from pull.kit.errors import Unprocessable

_BAD = re.compile("[\x00\ud800-\udfff]")
# Only bodies with a NUL byte or a \u escape can carry one (raw surrogates are not UTF-8).
_MAYBE = re.compile(rb"\x00|\\u", re.IGNORECASE)


def has_unsafe_text(value: Any) -> bool:
    if isinstance(value, str):
        return _BAD.search(value) is not None
    if isinstance(value, dict):
        return any(has_unsafe_text(k) or has_unsafe_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_unsafe_text(v) for v in value)
    return False


def _refuse(where: str) -> Unprocessable:
    return Unprocessable(
        "Text may not contain NUL characters or unpaired surrogates",
        code="INVALID_TEXT",
        details={"in": where},
    )


async def reject_unsafe_text(request: Request) -> None:
    if any(has_unsafe_text(v) for v in request.path_params.values()):
        raise _refuse("path")
    if any(has_unsafe_text(k) or has_unsafe_text(v) for k, v in request.query_params.multi_items()):
        raise _refuse("query")
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        body = await request.body()
        if body and _MAYBE.search(body):
            try:
                parsed = json.loads(body)
            except ValueError:
                return  # not JSON: the route's own parsing answers
            if has_unsafe_text(parsed):
                raise _refuse("body")
