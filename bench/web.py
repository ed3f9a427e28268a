"""Web app benchmark: 50 concurrent signed-in users browsing pages, server-side p99.

Run: `uv run python -m bench.web` (DURATION seconds, default 15). It starts the embedded stack,
`pull seed`, `pull api` (rate limits off) and `pull web` (WEB_COOKIE_SECURE=false: the load
generator speaks plain HTTP and httpx keeps Secure cookies for https only), signs 50 users up
through the web app's own form (CSRF token and all), then each user loops over
/markets, a market page, /funds and /account for DURATION seconds. The figure the target is
about is **server-side**: the web process's `web_request_duration_seconds` histogram (read from
its /metrics before and after), p99 as the upper bound of the bucket holding the 99th
percentile. Client-side latencies (including the load generator's own queueing on the same two
cores) are printed beside it, and a bare Starlette page driven by the same 50 clients is the
same-run baseline. The machine is shared with other work: absolute figures are pessimistic.
Results go to bench/results/web.json.

THINK seconds (default 0): each user pauses a random 0.5-1.5 x THINK between pages, as a person
reading a page does (Locust's and k6's users wait too). THINK=0 is the closed loop: 50 users
asking back to back, which on two cores measures throughput more than a page's latency.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.common import bare_server, machine, pull_api, server, stack, write
from pull import devstack

USERS = 50
DURATION = float(os.environ.get("DURATION", "15"))
THINK = float(os.environ.get("THINK", "0"))
PAGES = ["/markets", "/markets/KXFED-27JAN-CUT", "/funds", "/account"]


def buckets(
    metrics_url: str, name: str = "web_request_duration_seconds"
) -> dict[str, dict[float, float]]:
    """Cumulative counts of histogram `name` by route ("*": all), by upper bound."""
    text = httpx.get(metrics_url, timeout=10).text
    out: dict[str, dict[float, float]] = {"*": {}}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for s in family.samples:
            if s.name.endswith("_bucket"):
                le = float(s.labels["le"])
                for route in ("*", s.labels.get("route", "?")):
                    per = out.setdefault(route, {})
                    per[le] = per.get(le, 0.0) + s.value
    return out


def server_p99(before: dict[float, float], after: dict[float, float]) -> tuple[float, int]:
    diff = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in after}
    total = diff.get(float("inf"), 0.0)
    for le in sorted(diff):
        if total and diff[le] >= 0.99 * total:
            return le, int(total)
    return float("inf"), int(total)


async def sign_up(web: str) -> httpx.AsyncClient:
    c = httpx.AsyncClient(base_url=web, timeout=30)
    form = await c.get("/signup")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text[:200]
    r = await c.post(
        "/signup",
        data={
            "csrf_token": token.group(1),
            "email": f"bench-{uuid.uuid4().hex[:10]}@example.com",
            "password": "Bench-Web-Pass-2026!",
        },
    )
    assert r.status_code in (200, 303), r.text[:300]
    return c


async def browse(
    clients: list[httpx.AsyncClient], pages: list[str], think: float = 0.0
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + DURATION

    async def user(c: httpx.AsyncClient, offset: int) -> None:
        nonlocal errors
        i = offset
        if think:  # arrivals spread over one think time, not 50 pages at the same instant
            await asyncio.sleep(random.uniform(0, think))
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                r = await c.get(pages[i % len(pages)])
                if r.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - started)
            i += 1
            if think:
                await asyncio.sleep(think * random.uniform(0.5, 1.5))

    await asyncio.gather(*(user(c, n) for n, c in enumerate(clients)))
    latencies.sort()
    return {
        "requests": len(latencies),
        "requests_per_s": len(latencies) / DURATION,
        "client_p50_ms": 1000 * statistics.median(latencies),
        "client_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "errors": errors,
    }


def p99_by_route(
    before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]
) -> dict[str, float]:
    out = {}
    for route, per in after.items():
        p99, counted = server_p99(before.get(route, {}), per)
        if route != "*" and counted:
            out[route] = p99
    return out


async def run_web(web: str, api: str) -> dict[str, Any]:
    clients = [await sign_up(web) for _ in range(USERS)]
    api_name = "http_request_duration_seconds"
    try:
        await browse(clients[:5], PAGES)  # warm-up
        before, api_before = buckets(f"{web}/metrics"), buckets(f"{api}/metrics", api_name)
        result = await browse(clients, PAGES, THINK)
        after, api_after = buckets(f"{web}/metrics"), buckets(f"{api}/metrics", api_name)
    finally:
        for c in clients:
            await c.aclose()
    p99, counted = server_p99(before["*"], after["*"])
    api_p99, api_counted = server_p99(api_before["*"], api_after["*"])
    return {
        **result,
        "server_p99_le_s": p99,
        "server_requests": counted,
        "server_p99_le_s_by_route": p99_by_route(before, after),
        "api_p99_le_s": api_p99,
        "api_requests": api_counted,
        "api_p99_le_s_by_route": p99_by_route(api_before, api_after),
    }


async def run_baseline(url: str) -> dict[str, Any]:
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for _ in range(USERS)]
    try:
        return await browse(clients, ["/"], THINK)
    finally:
        for c in clients:
            await c.aclose()


def main() -> None:
    with stack() as s:
        api_port, web_port, base_port = (devstack.free_port() for _ in range(3))
        env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "DATABASE_URL": s.database_url,
            "REDIS_URL": s.redis_url,
            "TEMPORAL_ADDRESS": s.temporal_address,
            "ANALYTICS_INGEST": "off",
        }
        subprocess.run([sys.executable, "-m", "pull.cli", "seed"], env=env, check=True)
        with bare_server(base_port):
            baseline = asyncio.run(run_baseline(f"http://127.0.0.1:{base_port}"))
        with pull_api(s, api_port, RATE_LIMIT_ENABLED="false", ANALYTICS_INGEST="off"):
            web_env = {
                **env,
                "WEB_PORT": str(web_port),
                "WEB_HOST": "127.0.0.1",
                "WEB_API_URL": f"http://127.0.0.1:{api_port}",
                "WEB_COOKIE_SECURE": "false",
                "LOG_LEVEL": "warning",
            }
            with server(
                [sys.executable, "-m", "pull.cli", "web"],
                web_env,
                f"http://127.0.0.1:{web_port}/health",
            ):
                web = asyncio.run(
                    run_web(f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{api_port}")
                )
    payload = {
        "machine": machine(),
        "users": USERS,
        "seconds": DURATION,
        "think_seconds": THINK,
        "pages": PAGES,
        "baseline_bare_starlette": baseline,
        "web": web,
    }
    path = write("web", payload)
    print(f"baseline (bare Starlette, {USERS} clients): {baseline}")
    print(f"pull web ({USERS} signed-in users): {web}")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
