"""The trade event consumer: the broker's `/v2/events/trades` stream applied to PULL.

Events are applied in batches (what has arrived and not been applied yet, up to BATCH: a
reader task keeps reading the stream meanwhile, so nothing waits for more events), each
batch in one transaction together with the stream
cursor, so a crash before the commit re-reads the batch, and one after it never does: every
event (by id) and every execution (by execution id) is applied once. A batch that fails is
applied again one event per transaction, so one bad event holds back only itself. Events are
stored raw first. An event for an order PULL does not know is an alert. When the stream is
idle, pending journals run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.brokerage import accounts, fills
from pull.brokerage import repository as repo
from pull.brokerage.models import BrokerageOrder
from pull.brokerage.providers import wire
from pull.brokerage.providers.base import Broker, BrokerError, Heartbeat, TradeEvent
from pull.kit.db import session_scope, utcnow
from pull.ledger import service as ledger

log = logging.getLogger("pull.brokerage.events")
CURSOR = "trades"
REPLAY_ON_FIRST_START = dt.timedelta(days=1)
BATCH = 200


async def apply_event(*, session: AsyncSession, event: TradeEvent) -> bool:
    """Apply one trade event (the caller commits). False if it was applied before."""
    claimed = await repo.claim_event(
        session,
        event_id=event.event_id,
        event=event.event,
        broker_order_id=event.order.id,
        payload=wire.event_json(event),
    )
    if not claimed:
        return False
    order = await repo.order_by_broker_id(session, event.order.id, lock=True)
    await _apply_claimed(session, event, order)
    return True


async def _apply_claimed(
    session: AsyncSession, event: TradeEvent, order: BrokerageOrder | None
) -> None:
    """Apply an event claimed already; `order` is its order by broker id (locked) if found."""
    if order is None:
        try:
            ours = uuid.UUID(event.order.client_order_id)
        except ValueError:
            ours = None
        order = await repo.order(session, ours, lock=True) if ours else None
        if order is None or order.broker_account_id != event.account_id:
            subject = f"broker_order:{event.order.id}"
            if not await repo.alert_exists(session, "unknown_order", subject):
                repo.add_alert(
                    session,
                    kind="unknown_order",
                    user_id=None,
                    subject=subject,
                    details={"event_id": event.event_id, "event": event.event},
                )
                await session.flush()  # seen by the next event of the same batch
            return
    await fills.converge(
        session=session,
        order=order,
        snap=event.order,
        source="stream",
        execution_id=event.execution_id if event.event in ("fill", "partial_fill") else None,
        exec_qty=event.qty,
        exec_price=event.price,
        event_id=event.event_id,
        correction=event.event in ("trade_bust", "trade_correct"),
    )


async def _apply_all(session: AsyncSession, batch: list[TradeEvent]) -> int:
    """A batch in a few statements besides the ledger's: every event claimed in one insert;
    their orders, positions and journals read (and locked) in three; executions inserted in
    one and the changed rows flushed once, at the end (repository.Batch). Each new event is
    applied in stream order. Returns how many were new."""
    unique = {e.event_id: e for e in batch}
    fresh = await repo.claim_events(
        session,
        [
            {
                "id": e.event_id,
                "event": e.event,
                "broker_order_id": e.order.id,
                "payload": wire.event_json(e),
            }
            for e in unique.values()
        ],
    )
    new = [e for e in batch if e.event_id in fresh and unique.pop(e.event_id, None) is not None]
    if not new:
        return 0
    orders, loaded = await repo.preload_batch(session, [e.order.id for e in new])
    try:
        with session.no_autoflush:
            for e in new:
                order = orders.get(e.order.id)
                await _apply_claimed(session, e, order)
    finally:
        session.info.pop(repo.BATCH, None)
    await ledger.post_pending_many(session=session, posts=loaded.posts)
    await repo.finish_batch(session, loaded)
    return len(new)


async def apply_batch(maker: async_sessionmaker[AsyncSession], batch: list[TradeEvent]) -> int:
    """Apply events and advance the cursor past the last in one transaction; returns how many
    were new. If the transaction fails, the events are applied one per transaction."""
    try:
        async with session_scope(maker) as session:
            applied = await _apply_all(session, batch)
            await repo.advance_cursor(session, CURSOR, batch[-1].event_id)
        return applied
    except Exception:
        if len(batch) == 1:
            raise
        log.warning("trade event batch failed; applying it one event at a time")
        applied = 0
        for event in batch:
            applied += await apply_batch(maker, [event])
        return applied


async def batched(
    stream: AsyncIterator[TradeEvent | Heartbeat],
) -> AsyncGenerator[list[TradeEvent] | Heartbeat, None]:
    """The stream in batches of the events already received (at most BATCH), heartbeats in
    their place; a reader task reads ahead while a batch is applied."""
    queue: asyncio.Queue[TradeEvent | Heartbeat | Exception | None] = asyncio.Queue(BATCH * 2)

    async def read() -> None:
        try:
            async for item in stream:
                await queue.put(item)
            await queue.put(None)
        except Exception as exc:  # handed to the consumer, which reconnects
            await queue.put(exc)

    task = asyncio.create_task(read())
    held: TradeEvent | Heartbeat | Exception | None = None
    have_held = False
    try:
        while True:
            item = held if have_held else await queue.get()
            have_held = False
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            if isinstance(item, Heartbeat):
                yield item
                continue
            batch = [item]
            while len(batch) < BATCH and not queue.empty():
                nxt = queue.get_nowait()
                if isinstance(nxt, TradeEvent):
                    batch.append(nxt)
                else:
                    held, have_held = nxt, True
                    break
            yield batch
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


async def _cursor(maker: async_sessionmaker[AsyncSession]) -> str | None:
    async with session_scope(maker) as session:
        return (await repo.cursor(session, CURSOR)).last_id


async def consume(
    *,
    maker: async_sessionmaker[AsyncSession],
    broker: Broker,
    stop: asyncio.Event,
    drain: bool = False,
    retry_seconds: float = 1.0,
) -> int:
    """Apply the stream until `stop` (or, with `drain`, until it is idle). Returns how many
    events were applied. Reconnects from the cursor after any stream error."""
    applied = 0
    while not stop.is_set():
        since_id = await _cursor(maker)
        since = None if since_id else utcnow() - REPLAY_ON_FIRST_START
        try:
            async with contextlib.aclosing(
                batched(broker.trade_events(since_id=since_id, since=since))
            ) as items:
                async for item in items:
                    if isinstance(item, Heartbeat):
                        if item.dropped:
                            log.warning("broker dropped events; reconciliation heals them")
                        await accounts.execute_journals(maker=maker, broker=broker)
                        if drain or stop.is_set():
                            return applied
                        continue
                    applied += await apply_batch(maker, item)
                    if stop.is_set():
                        return applied
        except BrokerError as exc:
            log.warning("trade event stream failed", extra={"error": exc.message})
            if drain:
                raise
        except Exception:
            log.exception("trade event consumer error")
            if drain:
                raise
        try:
            await asyncio.wait_for(stop.wait(), timeout=retry_seconds)
        except TimeoutError:
            pass
    return applied
