"""Activities of the portfolio workflows: one dataclass input each, each batch in its own
transaction and idempotent (points are unique per user, kind and instant)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from temporalio import activity

from pull.brokerage import service as brokerage
from pull.kit.db import session_scope, utcnow
from pull.kit.runtime import worker_runtime
from pull.portfolio import snapshots, statements

SNAPSHOT_ROWS = Counter(
    "portfolio_snapshot_rows_written", "Portfolio valuation points written", ["kind"]
)
SNAPSHOT_BATCH_SECONDS = Histogram(
    "portfolio_snapshot_batch_seconds",
    "Seconds per snapshot batch",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SNAPSHOT_LAST_SUCCESS = Gauge(
    "portfolio_snapshot_last_success_timestamp_seconds",
    "When the last complete snapshot run of this kind finished (Unix seconds)",
    ["kind"],
)
SNAPSHOT_FAILED = Counter(
    "portfolio_snapshot_batch_failed", "Snapshot batches that raised (retried)", ["kind"]
)

STATEMENTS_WRITTEN = Counter("portfolio_statements_written", "Monthly statements generated")


@dataclass
class SnapshotBatchInput:
    kind: str  # eod | intraday
    at: str  # ISO instant the points are stamped with
    after: str | None
    limit: int


@activity.defn(name="portfolio_snapshot_batch")
async def snapshot_batch(inp: SnapshotBatchInput) -> dict[str, Any]:
    """Value the next `limit` customers after `after` and write their points (committed)."""
    rt = worker_runtime()
    started = time.perf_counter()
    broker = brokerage.make_broker(rt.settings, rt.sessionmaker)
    try:
        async with session_scope(rt.sessionmaker) as session:
            result = await snapshots.snapshot_batch(
                session=session,
                kind=inp.kind,
                at=dt.datetime.fromisoformat(inp.at),
                after=uuid.UUID(inp.after) if inp.after else None,
                limit=inp.limit,
                settings=rt.settings,
                broker=broker,
            )
    except Exception:
        SNAPSHOT_FAILED.labels(inp.kind).inc()
        raise
    SNAPSHOT_BATCH_SECONDS.labels(inp.kind).observe(time.perf_counter() - started)
    SNAPSHOT_ROWS.labels(inp.kind).inc(result.written)
    if result.last_user is None:
        SNAPSHOT_LAST_SUCCESS.labels(inp.kind).set(time.time())
    return {
        "written": result.written,
        "users": result.users,
        "last_user": str(result.last_user) if result.last_user else None,
    }


@dataclass
class StatementBatchInput:
    month: str  # YYYY-MM
    after: str | None
    limit: int


@activity.defn(name="portfolio_statement_batch")
async def statement_batch(inp: StatementBatchInput) -> dict[str, Any]:
    """Generate and store the month's statements of the next customers (committed)."""
    rt = worker_runtime()
    async with session_scope(rt.sessionmaker) as session:
        result = await statements.statement_batch(
            session=session,
            month=inp.month,
            after=uuid.UUID(inp.after) if inp.after else None,
            limit=inp.limit,
            settings=rt.settings,
            now=utcnow(),
        )
    STATEMENTS_WRITTEN.inc(result.written)
    return {
        "written": result.written,
        "users": result.users,
        "last_user": str(result.last_user) if result.last_user else None,
    }


ACTIVITIES: list[Callable[..., Any]] = [snapshot_batch, statement_batch]
