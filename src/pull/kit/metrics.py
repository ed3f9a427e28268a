"""Prometheus metrics shared by the API and the worker.

Names are the ones the runbook's alerts and dashboards query; keep them stable.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration by method and route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
)
HTTP_IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "HTTP requests being served",
    multiprocess_mode="livesum",
)
DB_POOL_ACTIVE = Gauge(
    "db_connection_pool_active",
    "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "db_connection_pool_max",
    "Largest number of connections the pool may open",
    multiprocess_mode="livesum",
)
MEMORY_LIMIT = Gauge(
    "process_memory_limit_bytes",
    "Memory available to this process: the cgroup limit, else the machine's RAM",
    multiprocess_mode="max",
)


def memory_limit_bytes() -> int:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:
            return int(raw)
    return int(psutil.virtual_memory().total)


def track_pool(engine: AsyncEngine) -> None:
    """Keep the pool gauges current from the pool's own counters at scrape time."""
    pool = engine.sync_engine.pool
    size = getattr(pool, "size", lambda: 0)()
    overflow = getattr(pool, "_max_overflow", 0)
    DB_POOL_MAX.set(size + max(overflow, 0))
    checked_out = getattr(pool, "checkedout", lambda: 0)
    DB_POOL_ACTIVE.set(checked_out())


def render_latest() -> bytes:
    """Text exposition, aggregating worker processes when running multi-process."""
    MEMORY_LIMIT.set(memory_limit_bytes())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
