"""Transactional outbox: events written with the business change, relayed after commit.

Delivery is at-least-once; every handler is idempotent (workflow ids are business keys,
signals carry event ids that workflows dedupe), so the effect happens exactly once even
when the relay crashes between dispatching and marking a row delivered.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, Text, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.attributes import set_committed_value
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from pull.kit.db import Base, utcnow

log = logging.getLogger("pull.outbox")

# After this many failed deliveries an event is left for an operator (it stays in the table,
# counted by the worker's `outbox_events_dead` gauge) instead of being retried forever.
MAX_ATTEMPTS = 25


class OutboxEvent(Base):
    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(100), index=True)
    key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


def emit(session: AsyncSession, *, topic: str, key: str, payload: dict[str, Any]) -> None:
    """Queue an event in the caller's transaction; it is relayed only if that commits."""
    session.add(OutboxEvent(topic=topic, key=key, payload=payload))


def start_workflow_event(
    session: AsyncSession,
    *,
    workflow: str,
    workflow_id: str,
    arg: dict[str, Any] | None = None,
    task_queue: str | None = None,
    allow_restart: bool = False,
) -> None:
    """Start `workflow` after commit. `task_queue` defaults to the relaying worker's queue;
    `allow_restart` lets the id start again once its previous run has closed."""
    payload: dict[str, Any] = {"workflow": workflow, "id": workflow_id, "arg": arg}
    if task_queue:
        payload["task_queue"] = task_queue
    if allow_restart:
        payload["allow_restart"] = True
    emit(session, topic="temporal.start", key=workflow_id, payload=payload)


def signal_workflow_event(
    session: AsyncSession, *, workflow_id: str, signal: str, arg: dict[str, Any]
) -> None:
    emit(
        session,
        topic="temporal.signal",
        key=workflow_id,
        payload={"id": workflow_id, "signal": signal, "arg": arg},
    )


Handler = Callable[[OutboxEvent], Awaitable[None]]
# Handles many events of its topics at once (a consumer that batches its own transaction);
# returns the events that failed, by id, with their error. Runs after the topics' per-event
# handlers, for the events those delivered.
BatchHandler = Callable[[list[OutboxEvent]], Awaitable[dict[int, str]]]

# A relay batch's delivered events marked in one statement (a fixed text asyncpg prepares
# once), where an ORM flush sent one UPDATE per event.
_MARK_DELIVERED = text(
    "UPDATE outbox_events SET delivered_at = :at WHERE id = ANY(CAST(:ids AS bigint[]))"
)


def temporal_handlers(client: Client, task_queue: str) -> dict[str, Handler]:
    async def start(event: OutboxEvent) -> None:
        p = event.payload
        args = [p["arg"]] if p.get("arg") is not None else []
        try:
            await client.start_workflow(
                p["workflow"],
                args=args,
                id=p["id"],
                task_queue=p.get("task_queue") or task_queue,
                id_reuse_policy=(
                    WorkflowIDReusePolicy.ALLOW_DUPLICATE
                    if p.get("allow_restart")
                    else WorkflowIDReusePolicy.REJECT_DUPLICATE
                ),
            )
        except WorkflowAlreadyStartedError:
            log.info("workflow already started", extra={"workflow_id": p["id"]})

    async def signal(event: OutboxEvent) -> None:
        p = event.payload
        handle = client.get_workflow_handle(p["id"])
        await handle.signal(p["signal"], p["arg"])

    return {"temporal.start": start, "temporal.signal": signal}


class OutboxRelay:
    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        handlers: dict[str, Handler],
        *,
        batch_size: int = 100,
        poll_seconds: float = 0.5,
        batch_handlers: dict[str, BatchHandler] | None = None,
    ) -> None:
        self.maker = maker
        self.handlers = handlers
        self.batch_handlers = batch_handlers or {}
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds

    async def relay_once(self) -> int:
        """Deliver one batch. Rows stay locked while handled, so relays can run side by side."""
        async with self.maker() as session, session.begin():
            rows = (
                await session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.delivered_at.is_(None))
                    .where(OutboxEvent.attempts < MAX_ATTEMPTS)
                    .order_by(OutboxEvent.id)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            batched: dict[BatchHandler, list[OutboxEvent]] = {}
            done: list[OutboxEvent] = []
            for event in rows:
                handler = self.handlers.get(event.topic)
                batch = self.batch_handlers.get(event.topic)
                if handler is None and batch is None:
                    event.attempts += 1
                    event.last_error = f"no handler for topic {event.topic}"
                    continue
                try:
                    if handler is not None:
                        await handler(event)
                except Exception as exc:
                    self._failed(event, f"{type(exc).__name__}: {exc}")
                    continue
                if batch is not None:
                    batched.setdefault(batch, []).append(event)
                    continue
                done.append(event)
            for batch, events in batched.items():
                try:
                    failures = await batch(events)
                except Exception as exc:
                    failures = {e.id: f"{type(exc).__name__}: {exc}" for e in events}
                for event in events:
                    if event.id in failures:
                        self._failed(event, failures[event.id])
                    else:
                        done.append(event)
            if done:
                at = utcnow()
                await session.execute(_MARK_DELIVERED, {"at": at, "ids": [e.id for e in done]})
                for event in done:  # the loaded rows agree, without a second UPDATE
                    set_committed_value(event, "delivered_at", at)
            delivered = len(done)
        return delivered

    @staticmethod
    def _failed(event: OutboxEvent, error: str) -> None:
        event.attempts += 1
        event.last_error = error[:2000]
        log.warning("outbox delivery failed", extra={"event_id": event.id, "topic": event.topic})

    async def backlog(self) -> tuple[int, int]:
        """(pending, dead) undelivered events, for the worker's gauges."""
        async with self.maker() as session:
            pending, dead = (
                await session.execute(
                    select(
                        func.count().filter(OutboxEvent.attempts < MAX_ATTEMPTS),
                        func.count().filter(OutboxEvent.attempts >= MAX_ATTEMPTS),
                    ).where(OutboxEvent.delivered_at.is_(None))
                )
            ).one()
        return int(pending), int(dead)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                count = await self.relay_once()
            except Exception:
                log.exception("outbox relay error")
                count = 0
            if count == 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
                except TimeoutError:
                    pass
