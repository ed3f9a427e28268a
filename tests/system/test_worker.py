"""The worker loop end to end on the Temporal dev server, and the worker's metrics."""

from __future__ import annotations

import re
import time
import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from pull.config import Settings
from pull.kit.outbox import emit
from pull.system.workflows import SystemCheckWorkflow
from pull.worker import build_worker


async def test_system_check_workflow_reads_the_database(
    temporal_client: Client,
    task_queue: str,
    settings: Settings,
    worker_runtime: object,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as s, s.begin():
        emit(s, topic="test.pending", key="a", payload={})
        emit(s, topic="test.pending", key="b", payload={})
    async with build_worker(temporal_client, settings, task_queue=task_queue):
        result = await temporal_client.execute_workflow(
            SystemCheckWorkflow.run,
            "hello",
            id=f"system-check-{uuid.uuid4().hex}",
            task_queue=task_queue,
        )
    assert result.label == "hello"
    assert re.match(r"\d{4}-\d{2}-\d{2} ", result.database_time)
    assert result.pending_outbox_events == 2


def _scrape(url: str) -> str:
    return httpx.get(url, timeout=5).text


async def test_worker_process_exports_metrics(
    worker_metrics_url: str, temporal_client: Client, settings: Settings
) -> None:
    """A real `pull worker` on pull-main-queue runs a workflow; its counters move."""
    result = await temporal_client.execute_workflow(
        SystemCheckWorkflow.run,
        "metrics",
        id=f"system-check-{uuid.uuid4().hex}",
        task_queue=settings.temporal_task_queue,
    )
    assert result.label == "metrics"
    deadline = time.monotonic() + 20
    text = ""
    while time.monotonic() < deadline:
        text = _scrape(worker_metrics_url)
        if 'temporal_workflow_completed_total{workflow_type="SystemCheckWorkflow"}' in text:
            break
        time.sleep(0.5)
    assert re.search(
        r'temporal_workflow_completed_total\{workflow_type="SystemCheckWorkflow"\} [1-9]', text
    ), text[-3000:]
    assert re.search(
        r'temporal_activity_execution_total\{activity_type="system_check",status="success"\} [1-9]',
        text,
    )
    assert re.search(
        r'temporal_workflow_task_queue_backlog\{task_queue="pull-main-queue"\} \d', text
    )
    assert "process_resident_memory_bytes" in text
    assert re.search(r"^process_memory_limit_bytes [1-9]", text, re.M)
