"""The shared httpx plumbing of the real vendor clients."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from pull.kyc.providers.base import ProviderError

log = logging.getLogger("pull.kyc.providers")


async def request_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    vendor: str,
    json: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """One call; any transport error, non-2xx status or non-object body is a ProviderError.

    Only the vendor, method, path and status are logged: bodies carry PII."""
    try:
        response = await client.request(method, url, json=json, headers=headers, auth=auth)
    except httpx.HTTPError as exc:
        log.warning(
            "provider call failed",
            extra={"vendor": vendor, "path": httpx.URL(url).path, "error": type(exc).__name__},
        )
        raise ProviderError(f"{vendor} is unreachable") from exc
    if response.status_code >= 300:
        log.warning(
            "provider call rejected",
            extra={"vendor": vendor, "path": httpx.URL(url).path, "status": response.status_code},
        )
        raise ProviderError(f"{vendor} answered {response.status_code}")
    try:
        body = response.json()
    except ValueError as exc:
        raise ProviderError(f"{vendor} answered with invalid JSON") from exc
    if not isinstance(body, dict):
        raise ProviderError(f"{vendor} answered with an unexpected body")
    return body


def field(body: dict[str, Any], *path: str, vendor: str) -> str:
    """A string at `path` in a vendor's JSON, or a ProviderError naming what was missing."""
    value: Any = body
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise ProviderError(f"{vendor} answer lacks {'.'.join(path)}")
        value = value[key]
    if not isinstance(value, str) or not value:
        raise ProviderError(f"{vendor} answer lacks {'.'.join(path)}")
    return value
