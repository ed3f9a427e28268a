"""Activities of the system-check workflow: prove the worker reaches the database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from temporalio import activity

from pull.kit.outbox import OutboxEvent
from pull.kit.runtime import worker_runtime


@dataclass(frozen=True)
class SystemCheckInput:
    label: str


@dataclass(frozen=True)
class SystemCheckResult:
    label: str
    database_time: str
    pending_outbox_events: int


@activity.defn(name="system_check")
async def system_check(inp: SystemCheckInput) -> SystemCheckResult:
    maker = worker_runtime().sessionmaker
    async with maker() as session:
        now = await session.scalar(text("SELECT now()::text"))
        pending = await session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.delivered_at.is_(None))
        )
    return SystemCheckResult(inp.label, str(now), int(pending or 0))
