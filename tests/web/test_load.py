"""What keeps pages fast under many users (bench/web.py measures it): market data asked of the
API once for many users (web.cache), and the served app's start-up objects out of the cyclic
collector's sight."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import subprocess
import sys
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.web.conftest import WebStack

TICKER = "KXFED-27JAN-CUT"


async def _signed_up(web: str) -> httpx.AsyncClient:
    """A signed-up user over plain HTTP: the session cookie is Secure, so it is carried by hand
    (httpx sends Secure cookies over https only)."""
    c = httpx.AsyncClient(base_url=web, timeout=60)
    form = await c.get("/signup")
    cookie = re.search(r"pull_session=([^;]+)", form.headers["set-cookie"])
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert cookie and token
    r = await c.post(
        "/signup",
        data={
            "csrf_token": token.group(1),
            "email": f"load-{uuid.uuid4().hex[:10]}@example.com",
            "password": "Load-Test-Pass-2026!",
        },
        headers={"Cookie": f"pull_session={cookie.group(1)}"},
    )
    assert r.status_code == 303, r.text[:300]
    signed = re.search(r"pull_session=([^;]+)", r.headers["set-cookie"])
    assert signed
    c.headers["Cookie"] = f"pull_session={signed.group(1)}"
    return c


def _api_calls(api: str) -> dict[str, float]:
    """The API's answered requests by route (http_requests_total)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{api}/metrics", timeout=10).text):
        if family.name == "http_requests":
            for s in family.samples:
                if s.name.endswith("_total"):
                    route = s.labels["route"]
                    out[route] = out.get(route, 0.0) + s.value
    return out


def test_many_users_market_page_asks_the_api_once_for_market_data(web_stack: WebStack) -> None:
    async def run() -> None:
        users = [await _signed_up(web_stack.web) for _ in range(4)]
        try:
            before = _api_calls(web_stack.api)
            pages = await asyncio.gather(*(u.get(f"/markets/{TICKER}") for u in users))
            after = _api_calls(web_stack.api)
        finally:
            for u in users:
                await u.aclose()
        assert [p.status_code for p in pages] == [200] * 4
        assert all(TICKER in p.text for p in pages)
        calls = {route: after.get(route, 0.0) - before.get(route, 0.0) for route in after}
        # market and candles once for the four pages; the user's own reads and the live book
        # for each of them
        assert calls["/api/v1/markets/{ticker}"] == 1
        assert calls["/api/v1/markets/{ticker}/candlesticks"] == 1
        assert calls["/api/v1/markets/{ticker}/orderbook"] == 4
        assert calls["/api/v1/positions"] == 4
        assert calls["/api/v1/fills"] == 4

    # a thread of its own: Playwright's sync API may hold this thread's event loop
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def test_the_served_web_app_freezes_what_start_up_built() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gc; from pull.web.app import served_web_app; served_web_app(); "
            "print(gc.get_freeze_count(), gc.get_threshold()[0])",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    frozen, young = (int(x) for x in out.stdout.split())
    assert frozen > 20_000  # modules, templates, routes: a full collection no longer walks them
    assert young == 50_000
