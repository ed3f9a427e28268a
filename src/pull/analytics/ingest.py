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
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.analytics import chschema, warehouse
from pull.analytics import repository as repo
from pull.analytics.client import Warehouse, run
from pull.analytics.normalize import epoch_ms
from pull.analytics.pii import clean_outbox_tsv
from pull.config import Settings
from pull.kit.db import utcnow

log = logging.getLogger("pull.analytics")

OUTBOX_CURSOR = "outbox"
# batches of one pass: read the next from PostgreSQL while ClickHouse inserts the last
PIPELINE_BATCHES = 8


@dataclass
class PassResult:
    outbox: int = 0
    inbox: int = 0

    @property
    def total(self) -> int:
        return self.outbox + self.inbox


class OutboxBatch:
    """Outbox rows as PostgreSQL's COPY printed them (chschema.OUTBOX_IN_COLUMNS, one line
    each, in id order). Only the first and last ids are read when the ids run without a hole
    (the usual case); every id otherwise."""

    __slots__ = ("count", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.count = data.count(b"\n")

    def __bool__(self) -> bool:
        return self.count > 0

    def first(self) -> int:
        return int(self.data[: self.data.index(b"\t")])

    def last(self) -> int:
        start = self.data.rfind(b"\n", 0, len(self.data) - 1) + 1
        return int(self.data[start : self.data.index(b"\t", start)])

    def contiguous(self) -> bool:
        return self.count > 0 and self.last() - self.first() + 1 == self.count

    def ids(self) -> list[int]:
        if self.contiguous():
            return list(range(self.first(), self.last() + 1))
        return [i for i, _ in self.ids_and_times()]

    def ids_and_times(self) -> list[tuple[int, int]]:
        """(id, created_at in epoch ms) of every row."""
        if not self.count:
            return []
        fields = (line.split(b"\t", 2) for line in self.data[:-1].split(b"\n"))
        return [(int(f[0]), int(f[1])) for f in fields]


def send_outbox(wh: Warehouse, data: bytes) -> None:
    """One insert of an outbox batch: personal data scrubbed from the text (pii), then
    ClickHouse parses it and its views write the `events` rows (chschema migration 5)."""
    if data:
        wh.insert_raw("outbox_in", clean_outbox_tsv(data), chschema.OUTBOX_IN_COLUMNS)


def send_inbox(wh: Warehouse, data: bytes) -> None:
    """One insert of client events (scrubbed on arrival, service.accept_messages)."""
    if data:
        wh.insert_raw("inbox_in", data, chschema.INBOX_IN_COLUMNS)


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

    def _insert_outbox(self, clean: bytes) -> None:
        self.wh.insert_raw("outbox_in", clean, chschema.OUTBOX_IN_COLUMNS)

    def _advance(self, high: int, gaps: list[Gap], fresh: OutboxBatch) -> tuple[int, list[Gap]]:
        """The highest id sent and the open gaps after a batch of new rows."""
        if not fresh or (fresh.contiguous() and fresh.first() == high + 1):
            return (fresh.last() if fresh else high), gaps  # no hole: nothing to remember
        gaps = list(gaps)
        for i, ts_ms in fresh.ids_and_times():
            if i > high + 1:
                gaps.append(Gap(high + 1, i - 1, ts_ms))
            high = i
        return high, gaps

    async def ingest_outbox(self) -> int:
        """One pass over the outbox; returns how many outbox rows were sent.

        A pass reads the rows committed in the open gaps (an index probe per gap, usually
        none) and the new rows after the highest id sent, in batches: while ClickHouse inserts
        one batch (in a thread: chDB and the HTTP client release the GIL), the next is read
        from PostgreSQL, up to PIPELINE_BATCHES a pass; then one cursor update and the commit.
        Nothing is read back from ClickHouse: a row sent twice (a failed pass, a restart, two
        ingesters) is collapsed there by id, and this ingester's memory of what it sent
        changes only once every insert of the pass has succeeded."""
        await self._ensure_schema()
        sent = 0
        async with self.maker() as session, session.begin():
            if not await repo.try_lock(session, repo.LOCK_OUTBOX):
                return 0
            pos = await repo.cursor(session, OUTBOX_CURSOR)
            high = max(self._high, pos)  # another ingester may have gone further
            gaps = [Gap(max(g.low, pos + 1), g.high, g.seen_ms) for g in self._gaps if g.high > pos]
            late = OutboxBatch(
                await repo.copy_outbox_gaps(session, [(g.low, g.high) for g in gaps])
            )
            if late:
                gaps = fill_gaps(gaps, late.ids())
            fresh = OutboxBatch(await repo.copy_outbox_after(session, high, self.batch_size))
            high, gaps = self._advance(high, gaps, fresh)
            data = late.data + fresh.data
            sent = late.count + fresh.count
            pending: asyncio.Future[None] | None = None
            try:
                for round_ in range(1, PIPELINE_BATCHES + 1):
                    if not data:
                        break
                    clean = await run(clean_outbox_tsv, data)  # beside the last insert
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(run(self._insert_outbox, clean))
                    data = b""
                    if fresh.count == self.batch_size and round_ < PIPELINE_BATCHES:
                        fresh = OutboxBatch(
                            await repo.copy_outbox_after(session, high, self.batch_size)
                        )
                        data = fresh.data
                        high, gaps = self._advance(high, gaps, fresh)
                        sent += fresh.count
                if pending is not None:
                    await pending
            finally:
                if pending is not None and not pending.done():
                    with contextlib.suppress(Exception):
                        await pending
            self._high = high
            now_ms = epoch_ms(utcnow())
            self._gaps = [g for g in gaps if now_ms - g.seen_ms < self.gap_ms]
            new_pos = self._gaps[0].low - 1 if self._gaps else self._high
            if new_pos != pos:
                await repo.set_cursor(session, OUTBOX_CURSOR, new_pos)
        return sent

    async def ingest_inbox(self) -> int:
        """One pass over the client events; returns how many were sent. Claims the next batch
        while ClickHouse inserts the last (up to PIPELINE_BATCHES), in one transaction that
        commits the claims once every insert has succeeded."""
        await self._ensure_schema()
        sent = 0
        async with self.maker() as session, session.begin():
            data = await repo.copy_claim_inbox(session, self.batch_size)
            for round_ in range(1, PIPELINE_BATCHES + 1):
                if not data:
                    break
                count = data.count(b"\n")
                sent += count
                insert = asyncio.ensure_future(run(send_inbox, self.wh, data))
                data = b""
                try:
                    if count == self.batch_size and round_ < PIPELINE_BATCHES:
                        data = await repo.copy_claim_inbox(session, self.batch_size)
                finally:
                    await insert
            now = utcnow()
            if now - self._last_prune > dt.timedelta(hours=1):
                self._last_prune = now
                await repo.prune_inbox(session, now - self.retention)
        return sent

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
        """Pass after pass while a pass fills a batch (a backlog); once caught up, one pass per
        `poll_seconds`. ClickHouse wants few large inserts: an insert into `outbox_in` costs
        about 80-100 ms of CPU whatever its size, with chDB in this process (its materialized
        views write four tables), so going on at once after every pass that sent anything
        made an insert as fast as chDB could take them under steady traffic."""
        while not stop.is_set():
            try:
                result = await self.ingest_once()
                backlog = max(result.outbox, result.inbox) >= self.batch_size
            except Exception as exc:
                log.warning("analytics ingest failed", extra={"error": f"{type(exc).__name__}"})
                backlog = False
            if not backlog:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
                except TimeoutError:
                    pass
