"""An open Server-Sent Events stream must not hold up the same customer's other requests (the
web app keeps one open per market page while the customer trades)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

STREAM = "/api/v1/stream"


async def test_requests_proceed_while_the_callers_stream_is_open(
    two_apis: list[str], trader: Any
) -> None:
    alice = await trader(cents=10_000)
    token = alice.headers["Authorization"].split()[1]
    async with httpx.AsyncClient(base_url=two_apis[0], timeout=20) as http:
        async with http.stream("GET", STREAM, params={"access_token": token}) as resp:
            assert resp.status_code == 200
            lines = resp.aiter_lines()
            assert await anext(lines) == "event: hello"
            for _ in range(3):
                r = await asyncio.wait_for(
                    http.get("/api/v1/balance", headers=alice.headers), timeout=10
                )
                assert r.status_code == 200, r.text
