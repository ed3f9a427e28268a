"""The ingester's pace: under steady traffic it inserts about once per poll interval (few
large inserts, as ClickHouse wants), not once per pass; with a backlog it goes on at once."""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.analytics.client import Warehouse
from pull.analytics.ingest import Ingestor
from pull.kit.outbox import emit


class CountingIngestor(Ingestor):
    inserts = 0

    def _insert_outbox(self, clean: bytes) -> None:
        self.inserts += 1
        super()._insert_outbox(clean)


async def _emit(maker: async_sessionmaker[AsyncSession], n: int) -> None:
    async with maker() as s, s.begin():
        for i in range(n):
            emit(s, topic="test.paced", key=str(i), payload={"i": i, "user_id": str(uuid.uuid4())})


def _landed(wh: Warehouse) -> int:
    sql = f"SELECT count() FROM {wh.database}.events FINAL WHERE event = 'test.paced'"
    return int(wh.rows(sql)[0][0])


async def _until(predicate: object, seconds: float) -> float:
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() - started < seconds, "not reached"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_steady_traffic_is_inserted_once_per_poll_not_once_per_event(
    sessionmaker: async_sessionmaker[AsyncSession], wh: Warehouse
) -> None:
    ingestor = CountingIngestor(sessionmaker, wh, batch_size=1000, poll_seconds=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    try:
        for _ in range(40):  # one small commit every 50 ms for 2 s
            await _emit(sessionmaker, 1)
            await asyncio.sleep(0.05)
        await _until(lambda: _landed(wh) == 40, 10)
    finally:
        stop.set()
        await task
    # 2 s of traffic at one pass per 0.5 s: about 5 inserts (40 when every pass goes on at once)
    assert ingestor.inserts <= 8, ingestor.inserts


async def test_a_backlog_is_ingested_without_waiting_between_passes(
    sessionmaker: async_sessionmaker[AsyncSession], wh: Warehouse
) -> None:
    await _emit(sessionmaker, 2500)
    ingestor = CountingIngestor(sessionmaker, wh, batch_size=100, poll_seconds=30)
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    try:
        # a pass sends at most 8 batches of 100: four passes, none waiting the 30 s poll
        await _until(lambda: _landed(wh) == 2500, 20)
    finally:
        stop.set()
        await task
