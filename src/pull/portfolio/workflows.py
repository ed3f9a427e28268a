"""Portfolio workflows: the snapshot run (end of day, intraday) of the schedules."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pull.portfolio.activities import (
        SnapshotBatchInput,
        StatementBatchInput,
        snapshot_batch,
        statement_batch,
    )

_TIMEOUT = timedelta(seconds=120)
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
BATCHES_PER_RUN = 100  # then continue-as-new, so the history stays short at any size


def stamp(kind: str, now: dt.datetime, every_minutes: int) -> dt.datetime:
    """The instant a run's points carry: the end of the day just finished (00:00 UTC today)
    for `eod`; `now` rounded down to the interval for `intraday`."""
    now = now.astimezone(dt.UTC)
    if kind == "eod":
        return dt.datetime.combine(now.date(), dt.time(), tzinfo=dt.UTC)
    step = every_minutes * 60
    return dt.datetime.fromtimestamp(int(now.timestamp()) // step * step, dt.UTC)


@workflow.defn(name="PortfolioSnapshotWorkflow")
class PortfolioSnapshotWorkflow:
    """Writes a `kind` point for every customer, `batch` customers per activity, walking user
    ids in order. The cursor is the workflow's state: a run that dies resumes after the last
    committed batch; a batch retried writes nothing twice (unique per user, kind, instant)."""

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> dict[str, Any]:
        kind = str(arg.get("kind", "eod"))
        at = (
            arg.get("at")
            or stamp(kind, workflow.now(), int(arg.get("every_minutes", 5))).isoformat()
        )
        after: str | None = arg.get("after")
        batch = int(arg.get("batch", 2000))
        written = int(arg.get("written", 0))
        users = int(arg.get("users", 0))
        for _ in range(BATCHES_PER_RUN):
            out = await workflow.execute_activity(
                snapshot_batch,
                SnapshotBatchInput(kind=kind, at=str(at), after=after, limit=batch),
                start_to_close_timeout=_TIMEOUT,
                retry_policy=_RETRY,
            )
            written += int(out["written"])
            users += int(out["users"])
            after = out["last_user"]
            if after is None:
                return {"kind": kind, "at": at, "users": users, "written": written}
        workflow.continue_as_new(
            {**arg, "at": at, "after": after, "written": written, "users": users}
        )


def previous_month(now: dt.datetime) -> str:
    first = dt.datetime(now.year, now.month, 1, tzinfo=dt.UTC)
    last = first - dt.timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


@workflow.defn(name="PortfolioStatementsWorkflow")
class PortfolioStatementsWorkflow:
    """Monthly statements for every customer (default: the month just ended), `batch` per
    activity; resumable by cursor, and a customer with a statement for the month is skipped."""

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> dict[str, Any]:
        month = str(arg.get("month") or previous_month(workflow.now().astimezone(dt.UTC)))
        after: str | None = arg.get("after")
        batch = int(arg.get("batch", 100))
        written = int(arg.get("written", 0))
        users = int(arg.get("users", 0))
        for _ in range(BATCHES_PER_RUN):
            out = await workflow.execute_activity(
                statement_batch,
                StatementBatchInput(month=month, after=after, limit=batch),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=None,
                retry_policy=_RETRY,
            )
            written += int(out["written"])
            users += int(out["users"])
            after = out["last_user"]
            if after is None:
                return {"month": month, "users": users, "written": written}
        workflow.continue_as_new(
            {**arg, "month": month, "after": after, "written": written, "users": users}
        )


WORKFLOWS = [PortfolioSnapshotWorkflow, PortfolioStatementsWorkflow]
