"""Moving events into ClickHouse in batches: the outbox (every domain event) and the inbox
(client track/identify calls).

Exactly once by event id: ClickHouse's ReplacingMergeTree keeps one row per (event, event_id)
and every dashboard reads with FINAL, so a batch inserted twice (a crash between the insert
and the PostgreSQL commit, two ingesters, a backfill over live data) changes no count.

The outbox is read by id behind a cursor (every id at or below it is in ClickHouse). An id
that is missing may belong to a transaction that has not committed yet: the cursor waits at
it (the rows after it are sent meanwhile and remembered, so they are not sent again) until
ANALYTICS_GAP_SECONDS have passed, then treats it as rolled back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.analytics import repository as repo
from pull.analytics import warehouse
from pull.analytics.client import Warehouse, run
from pull.analytics.normalize import Row, client_rows, from_outbox
from pull.config import Settings
from pull.kit.db import utcnow

log = logging.getLogger("pull.analytics")

OUTBOX_CURSOR = "outbox"


@dataclass
class PassResult:
    outbox: int = 0
    inbox: int = 0

    @property
    def total(self) -> int:
        return self.outbox + self.inbox


def outbox_rows(rows: Sequence[repo.OutboxRow]) -> list[Row]:
    out: list[Row] = []
    for r in rows:
        out.extend(
            from_outbox(outbox_id=r.id, topic=r.topic, payload=r.payload, created_at=r.created_at)
        )
    return out


class Ingestor:
    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        wh: Warehouse,
        *,
        batch_size: int = 5000,
        gap_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        inbox_retention_days: int = 7,
    ) -> None:
        self.maker = maker
        self.wh = wh
        self.batch_size = batch_size
        self.gap = dt.timedelta(seconds=gap_seconds)
        self.poll_seconds = poll_seconds
        self.retention = dt.timedelta(days=inbox_retention_days)
        # outbox ids above the cursor already sent, with their created_at
        self._sent: dict[int, dt.datetime] = {}
        self._schema_ready = False
        self._last_prune = dt.datetime.min.replace(tzinfo=dt.UTC)

    @classmethod
    def from_settings(
        cls, maker: async_sessionmaker[AsyncSession], wh: Warehouse, settings: Settings
    ) -> Ingestor:
        return cls(
            maker,
            wh,
            batch_size=settings.analytics_batch_size,
            gap_seconds=settings.analytics_gap_seconds,
            poll_seconds=settings.analytics_poll_seconds,
            inbox_retention_days=settings.analytics_inbox_retention_days,
        )

    async def _ensure_schema(self) -> None:
        if not self._schema_ready:
            await warehouse.ensure_schema(self.wh)
            self._schema_ready = True

    async def ingest_outbox(self) -> int:
        """One batch of outbox events; returns how many outbox rows were sent."""
        await self._ensure_schema()
        async with self.maker() as session, session.begin():
            if not await repo.try_lock(session, repo.LOCK_OUTBOX):
                return 0
            pos = await repo.cursor(session, OUTBOX_CURSOR)
            self._sent = {i: t for i, t in self._sent.items() if i > pos}
            high = max(self._sent, default=pos)
            # late commits inside the window already sent, then new rows after it
            late = [
                r for r in await repo.outbox_between(session, pos, high) if r.id not in self._sent
            ]
            fresh = await repo.outbox_after(session, high, self.batch_size)
            batch = late + fresh
            if batch:
                await run(warehouse.insert_rows, self.wh, outbox_rows(batch), utcnow())
                for r in batch:
                    self._sent[r.id] = r.created_at
            new_pos = self._advance(pos, utcnow())
            if new_pos != pos:
                await repo.set_cursor(session, OUTBOX_CURSOR, new_pos)
                self._sent = {i: t for i, t in self._sent.items() if i > new_pos}
        return len(batch)

    def _advance(self, pos: int, now: dt.datetime) -> int:
        """The highest id up to which every id is sent or given up as rolled back."""
        ids = sorted(self._sent)
        for i in ids:
            if i == pos + 1:
                pos = i
                continue
            # ids pos+1 .. i-1 are missing: skip them once the row after them is old enough
            if now - self._sent[i] >= self.gap:
                pos = i
                continue
            break
        return pos

    async def ingest_inbox(self) -> int:
        """One batch of client events; returns how many were sent."""
        await self._ensure_schema()
        async with self.maker() as session, session.begin():
            msgs = await repo.claim_inbox(session, self.batch_size)
            if msgs:
                rows, identities = client_rows(msgs)
                now = utcnow()
                await run(warehouse.insert_rows, self.wh, rows, now)
                await run(warehouse.insert_identities, self.wh, identities, now)
                await repo.mark_inbox(session, [m.id for m in msgs], now)
            now = utcnow()
            if now - self._last_prune > dt.timedelta(hours=1):
                self._last_prune = now
                await repo.prune_inbox(session, now - self.retention)
        return len(msgs)

    async def ingest_once(self) -> PassResult:
        return PassResult(outbox=await self.ingest_outbox(), inbox=await self.ingest_inbox())

    async def drain(self, max_passes: int = 10_000) -> PassResult:
        """Ingest until both sources are empty (tests, backfill)."""
        total = PassResult()
        for _ in range(max_passes):
            r = await self.ingest_once()
            total.outbox += r.outbox
            total.inbox += r.inbox
            if r.total == 0:
                break
        return total

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                count = (await self.ingest_once()).total
            except Exception as exc:
                log.warning("analytics ingest failed", extra={"error": f"{type(exc).__name__}"})
                count = 0
            if count == 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
                except TimeoutError:
                    pass
