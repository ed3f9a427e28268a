"""The live stream for the browser: `/stream` relays the API's Server-Sent Events.

The API's `/api/v1/stream` wants the customer's bearer token, which lives in the HttpOnly
session cookie where page scripts cannot read it (by design). So the browser opens an
`EventSource` on this same-origin route and the web process opens the API's stream with the
token, passing the bytes through unchanged. Nothing is buffered here: the API's per-connection
queue and slow-consumer rule still apply end to end.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from pull.web.web import Page

router = APIRouter(include_in_schema=False)

_MARKETS = re.compile(r"^[A-Za-z0-9._-]{1,64}(,[A-Za-z0-9._-]{1,64}){0,15}$")


async def _open(page: Page, markets: str) -> aiohttp.ClientResponse:
    return await page.api.http.get(
        page.api.base_url + "/api/v1/stream",
        params={"markets": markets} if markets else None,
        headers={
            "Accept": "text/event-stream",
            "Authorization": f"Bearer {page.session.access}",
            "X-Forwarded-For": page.client_ip,
        },
        # No overall deadline: the stream lasts as long as the page; the API pings every 15 s.
        timeout=aiohttp.ClientTimeout(total=None, connect=10.0, sock_read=None),
    )


@router.get("/stream")
async def stream(request: Request, markets: str = "") -> Response:
    page = Page(request)
    if not page.session.signed_in:
        return Response(status_code=401)
    if markets and not _MARKETS.match(markets):
        return Response("markets: up to 16 tickers, comma-separated", status_code=400)
    try:
        upstream = await _open(page, markets)
        if upstream.status == 401 and page.session.refresh:
            upstream.release()
            if not await page.refresh_once():
                return Response(status_code=401)
            upstream = await _open(page, markets)
    except (aiohttp.ClientError, TimeoutError):
        return Response(status_code=503)
    if upstream.status != 200:
        status = upstream.status
        upstream.release()
        # EventSource retries on its own; 204 tells it to stop (no stream for this session).
        return Response(status_code=204 if status in (401, 403) else 503)

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError):
            return
        finally:
            upstream.close()

    return StreamingResponse(
        relay(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
