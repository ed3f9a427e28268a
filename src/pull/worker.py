"""The Temporal worker process: every module's workflows and activities, the outbox relay,
and Prometheus metrics on METRICS_PORT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from prometheus_client import Counter, Gauge, start_http_server
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from pull import __version__
from pull.analytics.service import IngestRunner, ingest_process
from pull.brokerage.activities import ACTIVITIES as BROKERAGE_ACTIVITIES
from pull.brokerage.activities import ensure_schedule as ensure_brokerage_schedule
from pull.brokerage.activities import run_consumer as run_brokerage_consumer
from pull.brokerage.activities import run_sandbox_clock as run_brokerage_sandbox_clock
from pull.brokerage.onboarding import with_brokerage
from pull.brokerage.workflows import WORKFLOWS as BROKERAGE_WORKFLOWS
from pull.config import Settings, get_settings
from pull.email.activities import ACTIVITIES as EMAIL_ACTIVITIES
from pull.email.workflows import WORKFLOWS as EMAIL_WORKFLOWS
from pull.exchange.activities import finalize_settlement, run_clock, settle_batch
from pull.exchange.events import outbox_handlers as exchange_outbox_handlers
from pull.exchange.workflows import SettlementWorkflow
from pull.funding.activities import ACTIVITIES as FUNDING_ACTIVITIES
from pull.funding.events import outbox_handlers as funding_outbox_handlers
from pull.funding.events import with_recovery
from pull.funding.workflows import WORKFLOWS as FUNDING_WORKFLOWS
from pull.identity.events import outbox_handlers as identity_outbox_handlers
from pull.kit.db import make_engine, make_sessionmaker
from pull.kit.heap import freeze_startup_heap
from pull.kit.metrics import MEMORY_LIMIT, memory_limit_bytes
from pull.kit.outbox import BatchHandler, Handler, OutboxRelay, temporal_handlers
from pull.kit.redis import make_redis
from pull.kit.runtime import WorkerRuntime, set_worker_runtime
from pull.kyc.activities import ACTIVITIES as KYC_ACTIVITIES
from pull.kyc.events import outbox_handlers as kyc_outbox_handlers
from pull.kyc.workflows import KycWorkflow
from pull.ledger.service import invariant_report as ledger_invariant_report
from pull.notifications.activities import ACTIVITIES as NOTIFICATION_ACTIVITIES
from pull.notifications.events import batch_handlers as notification_batch_handlers
from pull.notifications.events import with_notifications
from pull.notifications.workflows import WORKFLOWS as NOTIFICATION_WORKFLOWS
from pull.portfolio.activities import ACTIVITIES as PORTFOLIO_ACTIVITIES
from pull.portfolio.schedule import ensure_schedules as ensure_portfolio_schedules
from pull.portfolio.workflows import WORKFLOWS as PORTFOLIO_WORKFLOWS
from pull.realtime.relay import outbox_handlers as realtime_outbox_handlers
from pull.realtime.relay import with_user_stream
from pull.rewards.activities import ACTIVITIES as REWARDS_ACTIVITIES
from pull.rewards.events import batch_handlers as rewards_batch_handlers
from pull.rewards.events import with_rewards
from pull.rewards.schedule import ensure_schedule as ensure_rewards_schedule
from pull.rewards.workflows import WORKFLOWS as REWARDS_WORKFLOWS
from pull.rwa.activities import ACTIVITIES as RWA_ACTIVITIES
from pull.rwa.workflows import WORKFLOWS as RWA_WORKFLOWS
from pull.system.activities import system_check
from pull.system.workflows import SystemCheckWorkflow

log = logging.getLogger("pull.worker")

BACKLOG = Gauge(
    "temporal_workflow_task_queue_backlog",
    "Approximate tasks waiting in the task queue (workflow + activity)",
    ["task_queue"],
)
WORKFLOW_COMPLETED = Counter(
    "temporal_workflow_completed", "Workflow executions completed", ["workflow_type"]
)
WORKFLOW_FAILED = Counter(
    "temporal_workflow_failed", "Workflow executions failed", ["workflow_type"]
)
ACTIVITY_EXECUTIONS = Counter(
    "temporal_activity_execution", "Activity executions by outcome", ["activity_type", "status"]
)
OUTBOX_PENDING = Gauge("outbox_events_pending", "Committed events not yet relayed")
OUTBOX_DEAD = Gauge("outbox_events_dead", "Events that failed delivery too often to retry")
LEDGER_NEGATIVE = Gauge(
    "ledger_negative_accounts",
    "Ledger accounts that are negative now, per account class (docs/money.md)",
    ["account_class", "never_negative"],
)
# Named, not left to Temporal's default, which hashes the bytecode of every loaded module
# (about 6 s of CPU at each worker process's start). Worker versioning is not used, so it only
# identifies the release in the server's view of the task queue's pollers.
BUILD_ID = f"pull-{__version__}"
LEDGER_CHECK_EVERY = 12  # metric polls (5 s each): the invariant report once a minute
ACTIVITY_FAILED = Counter(
    "temporal_activity_execution_failed", "Activity executions that failed", ["activity_type"]
)


def workflows() -> list[type]:
    """Every module's workflows; modules add theirs here as they land."""
    return [
        SystemCheckWorkflow,
        KycWorkflow,
        SettlementWorkflow,
        *FUNDING_WORKFLOWS,
        *REWARDS_WORKFLOWS,
        *PORTFOLIO_WORKFLOWS,
        *RWA_WORKFLOWS,
        *BROKERAGE_WORKFLOWS,
        *NOTIFICATION_WORKFLOWS,
        *EMAIL_WORKFLOWS,
    ]


def activities() -> list[Callable[..., Any]]:
    return [
        system_check,
        *KYC_ACTIVITIES,
        settle_batch,
        finalize_settlement,
        *FUNDING_ACTIVITIES,
        *REWARDS_ACTIVITIES,
        *PORTFOLIO_ACTIVITIES,
        *RWA_ACTIVITIES,
        *BROKERAGE_ACTIVITIES,
        *NOTIFICATION_ACTIVITIES,
        *EMAIL_ACTIVITIES,
    ]


def outbox_handlers(client: Client, settings: Settings) -> dict[str, Handler]:
    handlers = {
        **temporal_handlers(client, settings.temporal_task_queue),
        **kyc_outbox_handlers(),
        **exchange_outbox_handlers(),
        **funding_outbox_handlers(),
        **identity_outbox_handlers(),
        **realtime_outbox_handlers(),
    }
    # negative-balance recovery runs before each publish; the broker account opens after
    # KYC's own publish; the notifications consumer last; the user's live stream after
    # everything. The rewards earning consumer and the live-stream push of new notifications
    # are batch handlers (outbox_batch_handlers), run after all of them once per relay batch.
    return with_user_stream(
        with_notifications(with_rewards(with_recovery(with_brokerage(handlers))))
    )


def outbox_batch_handlers() -> dict[str, BatchHandler]:
    rewards, notifications = rewards_batch_handlers(), notification_batch_handlers()
    if rewards.keys() & notifications.keys():
        raise ValueError("one batch handler per topic")
    return {**rewards, **notifications}


def outbox_relay(
    maker: async_sessionmaker[AsyncSession],
    client: Client,
    settings: Settings,
    *,
    batch_size: int = 100,
) -> OutboxRelay:
    """The worker's relay: every per-event and batch handler (tests and benches build theirs
    here too, so they run what production runs)."""
    return OutboxRelay(
        maker,
        outbox_handlers(client, settings),
        batch_size=batch_size,
        poll_seconds=settings.outbox_poll_seconds,
        batch_handlers=outbox_batch_handlers(),
    )


class _ActivityMetrics(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = getattr(input.fn, "__temporal_activity_definition", None)
        activity_type = getattr(name, "name", None) or getattr(input.fn, "__name__", "unknown")
        try:
            result = await super().execute_activity(input)
        except BaseException:
            ACTIVITY_EXECUTIONS.labels(activity_type, "failure").inc()
            ACTIVITY_FAILED.labels(activity_type).inc()
            raise
        ACTIVITY_EXECUTIONS.labels(activity_type, "success").inc()
        return result


class MetricsInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityMetrics(next)


def drain_sdk_metrics(buffer: MetricBuffer) -> None:
    """Copy the SDK core's workflow completion/failure counters into our registry."""
    for update in buffer.retrieve_updates():
        name = update.metric.name
        wf_type = str(update.attributes.get("workflow_type", "unknown"))
        if name == "temporal_workflow_completed":
            WORKFLOW_COMPLETED.labels(wf_type).inc(int(update.value))
        elif name == "temporal_workflow_failed":
            WORKFLOW_FAILED.labels(wf_type).inc(int(update.value))


async def task_queue_backlog(client: Client, namespace: str, task_queue: str) -> int:
    total = 0
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=kind,
                report_stats=True,
            )
        )
        total += int(resp.stats.approximate_backlog_count)
    return total


async def export_ledger_invariants(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Set `ledger_negative_accounts` from the ledger's invariant report."""
    async with sessionmaker() as session:
        report = await ledger_invariant_report(session=session)
    for c in report.classes:
        LEDGER_NEGATIVE.labels(c.account_class, str(c.never_negative).lower()).set(c.negative_count)


async def _poll_metrics(
    client: Client,
    settings: Settings,
    buffer: MetricBuffer,
    relay: OutboxRelay,
    stop: asyncio.Event,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    polls = 0
    while not stop.is_set():
        drain_sdk_metrics(buffer)
        MEMORY_LIMIT.set(memory_limit_bytes())
        if polls % LEDGER_CHECK_EVERY == 0:
            try:
                await export_ledger_invariants(sessionmaker)
            except Exception as exc:
                log.warning("ledger invariant query failed", extra={"error": type(exc).__name__})
        polls += 1
        try:
            pending, dead = await relay.backlog()
            OUTBOX_PENDING.set(pending)
            OUTBOX_DEAD.set(dead)
        except Exception as exc:
            log.warning("outbox backlog query failed", extra={"error": type(exc).__name__})
        try:
            backlog = await task_queue_backlog(
                client, settings.temporal_namespace, settings.temporal_task_queue
            )
            BACKLOG.labels(settings.temporal_task_queue).set(backlog)
        except Exception as exc:
            log.warning("task queue describe failed", extra={"error": type(exc).__name__})
        try:
            await asyncio.wait_for(stop.wait(), timeout=5)
        except TimeoutError:
            pass


def build_worker(
    client: Client,
    settings: Settings,
    *,
    task_queue: str | None = None,
    extra_workflows: Sequence[type] = (),
    extra_activities: Sequence[Callable[..., Any]] = (),
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or settings.temporal_task_queue,
        workflows=[*workflows(), *extra_workflows],
        activities=[*activities(), *extra_activities],
        max_concurrent_activities=settings.worker_concurrency,
        max_concurrent_workflow_tasks=settings.worker_concurrency,
        interceptors=[MetricsInterceptor()],
        graceful_shutdown_timeout=timedelta(seconds=20),
        build_id=BUILD_ID,
    )


def build_email_worker(client: Client, settings: Settings) -> Worker | None:
    """A second worker on EMAIL_TASK_QUEUE when it names a queue of its own (docs/email.md)."""
    queue = settings.email_task_queue
    if not queue or queue == settings.temporal_task_queue:
        return None
    return Worker(
        client,
        task_queue=queue,
        workflows=EMAIL_WORKFLOWS,
        activities=EMAIL_ACTIVITIES,
        max_concurrent_activities=settings.worker_concurrency,
        interceptors=[MetricsInterceptor()],
        graceful_shutdown_timeout=timedelta(seconds=20),
        build_id=BUILD_ID,
    )


def init_runtime(settings: Settings) -> WorkerRuntime:
    engine = make_engine(
        settings.database_url, pool_size=settings.worker_concurrency, max_overflow=5
    )
    redis = make_redis(settings.redis_url, max_connections=settings.redis_pool_max)
    runtime = WorkerRuntime(
        settings=settings,
        engine=engine,
        sessionmaker=make_sessionmaker(engine, redis=redis),
        redis=redis,
    )
    set_worker_runtime(runtime)
    return runtime


async def ensure_schedules(client: Client, settings: Settings, *, strict: bool = False) -> None:
    """Every Temporal schedule of PULL, in one place: `rewards-maintenance`,
    `brokerage-reconcile` and `portfolio-eod/-statements/-intraday` (each created when missing,
    an existing one kept). Run once by `pull schedules` (deploys, after their settings change)
    and on start by workers with WORKER_SCHEDULES on (the default; test and ad-hoc workers
    run with it off, so they do not point the schedules at their task queue). `strict`: raise
    on the first failure instead of logging it (the worker still runs; its next start retries)."""
    for name, make in (
        ("rewards", ensure_rewards_schedule),
        ("brokerage", ensure_brokerage_schedule),
        ("portfolio", ensure_portfolio_schedules),
    ):
        try:
            await make(client, settings)
        except Exception:
            if strict:
                raise
            log.exception("schedule not created", extra={"schedules": name})


async def run_worker(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    start_http_server(settings.metrics_port)
    buffer = MetricBuffer(10_000)
    temporal_runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    client = await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, runtime=temporal_runtime
    )
    runtime = init_runtime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    relay = outbox_relay(runtime.sessionmaker, client, settings)
    worker = build_worker(client, settings)
    email_worker = build_email_worker(client, settings)
    analytics = IngestRunner(settings, runtime.sessionmaker)
    if ingest_process(settings) == "worker":  # a ClickHouse server: the worker feeds it
        analytics.start()
    # Everything built so far lives as long as the process: out of the collector's sight. The
    # outbox relay's batch handlers (rewards' earning consumer) spent about a third of their CPU
    # in collections without it (docs/performance.md, Rewards, stop 29).
    freeze_startup_heap()
    log.info(
        "worker started",
        extra={"task_queue": settings.temporal_task_queue, "metrics_port": settings.metrics_port},
    )
    async with worker, contextlib.AsyncExitStack() as extra:
        if email_worker is not None:
            await extra.enter_async_context(email_worker)
        tasks = [
            asyncio.create_task(relay.run(stop)),
            asyncio.create_task(
                _poll_metrics(client, settings, buffer, relay, stop, runtime.sessionmaker)
            ),
            asyncio.create_task(
                run_clock(runtime.sessionmaker, stop, every=settings.exchange_clock_seconds)
            ),
            asyncio.create_task(run_brokerage_consumer(runtime.sessionmaker, settings, stop)),
            asyncio.create_task(run_brokerage_sandbox_clock(runtime.sessionmaker, settings, stop)),
        ]
        if settings.worker_schedules:
            await ensure_schedules(client, settings)
        await stop.wait()
        log.info("worker stopping")
        await asyncio.gather(*tasks, return_exceptions=True)
        await analytics.stop()
    await runtime.redis.aclose()
    await runtime.engine.dispose()
    set_worker_runtime(None)
