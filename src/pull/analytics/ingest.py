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
from pull.analytics.normalize import EventColumns, client_rows, epoch_ms
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


def outbox_columns(rows: Sequence[repo.RawOutbox]) -> EventColumns:
    """The `events` rows of a batch of outbox events, column by column."""
    batch = EventColumns()
    add = batch.add_outbox
    for r in rows:
        add(r.id, r.topic, r.payload_json, r.ts_ms)
    return batch


@dataclass
class Gap:
    """Outbox ids low..high (inclusive) not committed when the rows after them were read:
    open transactions, or rolled-back ones. `seen_ms` is the created_at (epoch ms) of the
    first row after them; once it is ANALYTICS_GAP_SECONDS old they count as rolled back."""

    low: int
    high: int
    seen_ms: int


def fill_gaps(gaps: list[Gap], ids: Sequence[int]) -> list[Gap]:
    """`gaps` without the ids that have now arrived (sorted ids)."""
    if not ids:
        return gaps
    out: list[Gap] = []
    arrived = sorted(ids)
    k = 0
    for g in gaps:
        low = g.low
        while k < len(arrived) and arrived[k] < low:
            k += 1
        while k < len(arrived) and arrived[k] <= g.high:
            if arrived[k] > low:
                out.append(Gap(low, arrived[k] - 1, g.seen_ms))
            low = arrived[k] + 1
            k += 1
        if low <= g.high:
            out.append(Gap(low, g.high, g.seen_ms))
    return out


class Ingestor:
    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        wh: Warehouse,
        *,
        batch_size: int = 20_000,
        gap_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        inbox_retention_days: int = 7,
    ) -> None:
        self.maker = maker
        self.wh = wh
        self.batch_size = batch_size
        self.gap_ms = int(gap_seconds * 1000)
        self.poll_seconds = poll_seconds
        self.retention = dt.timedelta(days=inbox_retention_days)
        # the highest outbox id sent by this ingester, and the ids below it it has not seen
        self._high = 0
        self._gaps: list[Gap] = []
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
        """One batch of outbox events; returns how many outbox rows were sent.

        Per batch: one read of the new rows after the highest id sent, one read of the ids in
        the open gaps (usually none), one insert, one cursor update. Nothing is read back from
        ClickHouse: a row sent twice (a restart, two ingesters) is collapsed there by id."""
        await self._ensure_schema()
        async with self.maker() as session, session.begin():
            if not await repo.try_lock(session, repo.LOCK_OUTBOX):
                return 0
            pos = await repo.cursor(session, OUTBOX_CURSOR)
            if self._high < pos:  # first pass, or another ingester went further
                self._high = pos
            self._gaps = [
                Gap(max(g.low, pos + 1), g.high, g.seen_ms) for g in self._gaps if g.high > pos
            ]
            late = await repo.raw_outbox_gaps(session, [(g.low, g.high) for g in self._gaps])
            fresh = await repo.raw_outbox_after(session, self._high, self.batch_size)
            batch = late + fresh
            if batch:
                cols = await run(outbox_columns, batch)
                await run(warehouse.insert_columns, self.wh, cols, utcnow())
            self._gaps = fill_gaps(self._gaps, [r.id for r in late])
            for r in fresh:
                if r.id > self._high + 1:
                    self._gaps.append(Gap(self._high + 1, r.id - 1, r.ts_ms))
                self._high = r.id
            now_ms = epoch_ms(utcnow())
            self._gaps = [g for g in self._gaps if now_ms - g.seen_ms < self.gap_ms]
            new_pos = self._gaps[0].low - 1 if self._gaps else self._high
            if new_pos != pos:
                await repo.set_cursor(session, OUTBOX_CURSOR, new_pos)
        return len(batch)

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
