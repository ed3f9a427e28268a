"""Client events end to end through HTTP: `bench/analytics.py --http-events N` (see there)."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import pull_api, stack
from pull import devstack
from pull.analytics import warehouse
from pull.analytics.client import Target

JSON_HEADERS = {"content-type": "application/json"}


def http_batch(n: int, clients: int = 4, per_request: int = 500) -> dict[str, float]:
    """The client path end to end through HTTP: a real `pull api` (chDB in it, its ingester
    on), `clients` concurrent clients POSTing /api/v1/analytics/batch with `per_request`
    anonymous track events each, until n are accepted; then until all n are in ClickHouse
    (counted FINAL through the API process, which owns chDB, over its relay socket)."""
    from pull.analytics.relay import RelayWarehouse
    from pull.config import DEV_INTERNAL_KEY

    data = Path(tempfile.mkdtemp(prefix="pull-bench-analytics-http-"))
    chdb = str(data / "chdb")
    port = devstack.free_port()
    try:
        with stack() as s, pull_api(
            s, port, RATE_LIMIT_ENABLED="false", ANALYTICS_INGEST="api",
            ANALYTICS_POLL_SECONDS="0.1", CLICKHOUSE_CHDB_PATH=chdb,
        ) as proc:  # fmt: skip
            relay = RelayWarehouse(
                Target(database="pull_analytics", chdb_path=chdb), DEV_INTERNAL_KEY,
                promote=lambda: None,
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}/api/v1/analytics/batch"
            requests = n // per_request

            def message(r: int, k: int) -> dict[str, Any]:
                return {
                    "type": "track",
                    "event": "Market Viewed",
                    "anonymous_id": f"a-{(r * per_request + k) % 50_000}",
                    "message_id": f"m-{r}-{k}",
                    "properties": {"ticker": f"KX-{k % 200}", "source": "app"},
                }

            def body(r: int) -> bytes:
                return json.dumps({"batch": [message(r, k) for k in range(per_request)]}).encode()

            bodies = [body(r) for r in range(requests)]

            async def post_all() -> int:
                accepted = 0
                queue = list(range(requests))
                async with httpx.AsyncClient(timeout=120) as c:

                    async def client() -> None:
                        nonlocal accepted
                        while queue:
                            r = await c.post(url, content=bodies[queue.pop()], headers=JSON_HEADERS)
                            r.raise_for_status()
                            accepted += int(r.json()["accepted"])

                    await asyncio.gather(*(client() for _ in range(clients)))
                return accepted

            api = psutil.Process(proc.pid)
            cpu0 = sum(_tree_cpu(api))
            t0 = time.perf_counter()
            accepted = asyncio.run(post_all())
            accept_s = time.perf_counter() - t0
            while warehouse.count_events(relay) < accepted:
                time.sleep(0.05)
            total_s = time.perf_counter() - t0
            api_cpu = sum(_tree_cpu(api)) - cpu0
            return {
                "events": accepted,
                "accepted_events_per_s": accepted / accept_s,
                "http_to_clickhouse_events_per_s": accepted / total_s,
                "api_cpu_s": api_cpu,
                "api_events_per_cpu_s": accepted / api_cpu,
            }
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _tree_cpu(p: Any) -> list[float]:
    """CPU seconds (user + system) of a process and its children (uvicorn's workers)."""
    out = []
    for q in [p, *p.children(recursive=True)]:
        try:
            t = q.cpu_times()
            out.append(t.user + t.system)
        except psutil.Error:
            pass
    return out
