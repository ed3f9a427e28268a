"""The API's connection pool keeps what it opened: no PostgreSQL connection per burst."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, text

from pull.kit.db import make_engine
from tests.conftest import Services


async def test_connections_above_pool_size_are_kept_for_the_next_burst(
    services: Services,
) -> None:
    engine = make_engine(services.database_url, pool_size=2, max_overflow=3)
    opened: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda conn, record: opened.append(conn))
    try:

        async def hold(barrier: asyncio.Barrier) -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                await barrier.wait()  # all five checked out at once

        for _ in range(3):  # three bursts of five requests in flight
            barrier = asyncio.Barrier(5)
            await asyncio.gather(*(hold(barrier) for _ in range(5)))
        # SQLAlchemy's overflow closed the 3 above pool_size after each burst: 2 + 3 * 3 = 11
        assert len(opened) == 5
        assert engine.pool.checkedin() == 5  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
