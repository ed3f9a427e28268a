"""Brokerage activities and the worker's background loops (event consumer, sandbox clock)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from pull.brokerage.events import consume
from pull.brokerage.providers.factory import make_broker
from pull.brokerage.providers.sandbox import SandboxBroker
from pull.brokerage.reconcile import reconcile
from pull.config import Settings
from pull.kit.runtime import worker_runtime

log = logging.getLogger("pull.brokerage")
SCHEDULE_ID = "brokerage-reconcile"


@dataclass
class ReconcileInput:
    grace_seconds: float = 30.0


@activity.defn(name="brokerage_reconcile")
async def reconcile_activity(arg: ReconcileInput) -> dict[str, Any]:
    rt = worker_runtime()
    broker = make_broker(rt.settings, rt.sessionmaker)
    report = await reconcile(
        maker=rt.sessionmaker,
        broker=broker,
        grace_seconds=arg.grace_seconds,
        pending_timeout_seconds=rt.settings.brokerage_pending_timeout_seconds,
    )
    if report.alerts:
        log.warning("brokerage reconciliation raised alerts", extra=report.model_dump())
    return report.model_dump()


async def ensure_schedule(client: Client, settings: Settings) -> None:
    """The Temporal schedule that runs BrokerageReconcileWorkflow every
    BROKERAGE_RECONCILE_SECONDS (created once; an existing one is kept)."""
    from pull.brokerage.workflows import BrokerageReconcileWorkflow

    try:
        await client.create_schedule(
            SCHEDULE_ID,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    BrokerageReconcileWorkflow.run,
                    asdict(ReconcileInput(settings.brokerage_reconcile_grace_seconds)),
                    id="brokerage-reconcile-run",
                    task_queue=settings.temporal_task_queue,
                ),
                spec=ScheduleSpec(
                    intervals=[
                        ScheduleIntervalSpec(
                            every=timedelta(seconds=settings.brokerage_reconcile_seconds)
                        )
                    ]
                ),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )
    except ScheduleAlreadyRunningError:
        pass


async def run_consumer(
    maker: async_sessionmaker[AsyncSession], settings: Settings, stop: asyncio.Event
) -> None:
    """The worker's trade event consumer (reconnects on its own)."""
    if not settings.brokerage_consumer_enabled:
        return
    try:
        broker = make_broker(settings, maker)
    except Exception:
        log.exception("brokerage consumer not started")
        return
    await consume(maker=maker, broker=broker, stop=stop)


async def run_sandbox_clock(
    maker: async_sessionmaker[AsyncSession], settings: Settings, stop: asyncio.Event
) -> None:
    """Sandbox only: route queued equity orders at the open, expire day orders at the close."""
    try:
        broker = make_broker(settings, maker)
    except Exception:
        return
    if not isinstance(broker, SandboxBroker):
        return
    while not stop.is_set():
        try:
            await broker.tick()
        except Exception:
            log.exception("sandbox broker clock failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=settings.brokerage_sandbox_tick_seconds)
        except TimeoutError:
            pass


ACTIVITIES = [reconcile_activity]
