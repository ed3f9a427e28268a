"""Outbox: nothing leaves a rolled-back transaction; a committed event takes effect once,
even when the relay dies between dispatching it and marking it delivered."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus

from pull.config import Settings
from pull.kit.outbox import OutboxEvent, OutboxRelay, emit, start_workflow_event, temporal_handlers
from pull.system.workflows import SystemCheckWorkflow
from pull.worker import build_worker


class RelayCrash(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches it."""


async def test_rolled_back_transaction_emits_nothing(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    seen: list[int] = []

    async def record(event: OutboxEvent) -> None:
        seen.append(event.id)

    async with sessionmaker() as s:
        emit(s, topic="test.topic", key="k", payload={"n": 1})
        await s.flush()
        await s.rollback()
    relay = OutboxRelay(sessionmaker, {"test.topic": record})
    assert await relay.relay_once() == 0
    assert seen == []
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(OutboxEvent)) == 0


async def test_committed_events_are_delivered_in_order_once(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    seen: list[dict[str, Any]] = []

    async def record(event: OutboxEvent) -> None:
        seen.append(event.payload)

    async with sessionmaker() as s, s.begin():
        for n in range(3):
            emit(s, topic="test.topic", key=f"k{n}", payload={"n": n})
    relay = OutboxRelay(sessionmaker, {"test.topic": record})
    assert await relay.relay_once() == 3
    assert await relay.relay_once() == 0
    assert seen == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_failing_handler_is_retried_and_recorded(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    calls = 0

    async def flaky(event: OutboxEvent) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("temporal unreachable")

    async with sessionmaker() as s, s.begin():
        emit(s, topic="test.topic", key="k", payload={})
    relay = OutboxRelay(sessionmaker, {"test.topic": flaky})
    assert await relay.relay_once() == 0
    async with sessionmaker() as s:
        row = (await s.scalars(select(OutboxEvent))).one()
        assert row.attempts == 1
        assert row.last_error is not None and "temporal unreachable" in row.last_error
        assert row.delivered_at is None
    assert await relay.relay_once() == 1


async def test_relay_crash_mid_way_starts_the_workflow_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    temporal_client: Client,
    task_queue: str,
    settings: Settings,
    worker_runtime: object,
) -> None:
    workflow_id = f"system-check-{uuid.uuid4().hex}"
    async with sessionmaker() as s, s.begin():
        start_workflow_event(
            s, workflow="SystemCheckWorkflow", workflow_id=workflow_id, arg="outbox"
        )

    real = temporal_handlers(temporal_client, task_queue)

    async def start_then_die(event: OutboxEvent) -> None:
        await real["temporal.start"](event)
        raise RelayCrash

    crashing = OutboxRelay(sessionmaker, {"temporal.start": start_then_die})
    try:
        await crashing.relay_once()
    except RelayCrash:
        pass
    else:
        raise AssertionError("the relay should have crashed")

    async with sessionmaker() as s:
        row = (await s.scalars(select(OutboxEvent))).one()
        assert row.delivered_at is None  # the crash lost the "delivered" mark

    relay = OutboxRelay(sessionmaker, real)
    assert await relay.relay_once() == 1  # re-dispatched: already started counts as done
    assert await relay.relay_once() == 0

    async with build_worker(temporal_client, settings, task_queue=task_queue):
        handle = temporal_client.get_workflow_handle_for(SystemCheckWorkflow.run, workflow_id)
        result = await handle.result()
    assert result.label == "outbox"
    runs = [wf async for wf in temporal_client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    assert len(runs) == 1
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_poison_event_stops_after_max_attempts(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from pull.kit.outbox import MAX_ATTEMPTS

    async def broken(event: OutboxEvent) -> None:
        raise ValueError("bad payload")

    async with sessionmaker() as s, s.begin():
        emit(s, topic="test.topic", key="poison", payload={})
        emit(s, topic="test.other", key="fine", payload={})
    relay = OutboxRelay(sessionmaker, {"test.topic": broken})
    for _ in range(MAX_ATTEMPTS + 3):
        await relay.relay_once()
    async with sessionmaker() as s:
        poison = (await s.scalars(select(OutboxEvent).where(OutboxEvent.key == "poison"))).one()
        assert poison.attempts == MAX_ATTEMPTS
    # the event with no handler also failed each time, so both end up dead
    assert await relay.backlog() == (0, 2)


async def test_batch_handler_runs_once_per_batch_after_the_per_event_handlers(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    order: list[str] = []
    batches: list[list[int]] = []

    async def publish(event: OutboxEvent) -> None:
        if event.payload["n"] == 1:
            raise RuntimeError("publish failed")
        order.append(f"publish {event.payload['n']}")

    async def consume(events: list[OutboxEvent]) -> dict[int, str]:
        batches.append([e.payload["n"] for e in events])
        order.append("batch")
        return {e.id: "bad payload" for e in events if e.payload["n"] == 3}

    async with sessionmaker() as s, s.begin():
        for n in range(5):
            emit(s, topic="test.batched", key=f"k{n}", payload={"n": n})
        emit(s, topic="test.batch_only", key="b", payload={"n": 9})
    relay = OutboxRelay(
        sessionmaker,
        {"test.batched": publish},
        batch_handlers={"test.batched": consume, "test.batch_only": consume},
    )
    # 5 events, 1 fails its publish (not batched), 1 fails in the batch: 4 delivered.
    assert await relay.relay_once() == 4
    assert batches == [[0, 2, 3, 4, 9]]
    assert order[-1] == "batch" and order.count("batch") == 1
    async with sessionmaker() as s:
        rows = (await s.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    undelivered = {r.payload["n"]: (r.attempts, r.last_error) for r in rows if not r.delivered_at}
    assert undelivered == {1: (1, "RuntimeError: publish failed"), 3: (1, "bad payload")}
