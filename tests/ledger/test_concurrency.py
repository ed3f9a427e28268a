"""200 withdrawals at once, each on its own database connection, overdraw nothing.

The test runs against a PostgreSQL server of its own (the embedded one, max_connections 200):
the shared test server's connection slots are partly held by the pools of other tests' API and
worker processes, and 200 simultaneous connections need all of them.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from pull import devstack
from pull.ledger.service import (
    InsufficientFunds,
    Leg,
    get_balance,
    system_account,
    transfer,
    trial_balance,
    user_account,
)
from pull.migrate import upgrade
from tests.ledger.conftest import insert_user

PARALLEL = 200
EACH = 100
FUNDED = 10_000  # room for exactly 100 of the 200


@pytest.fixture
async def own_database() -> AsyncIterator[str]:
    data = Path(tempfile.mkdtemp(prefix="pull-ledger-concurrency-"))
    data.chmod(0o755)
    pg, url = await asyncio.to_thread(devstack.start_postgres, data, devstack.free_port())
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        await asyncio.to_thread(pg.stop)
        shutil.rmtree(data, ignore_errors=True)


async def test_parallel_withdrawals_from_separate_connections_never_overdraw(
    own_database: str,
) -> None:
    engine = create_async_engine(own_database, poolclass=NullPool)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    clearing = system_account("bank_clearing")
    async with maker() as s, s.begin():
        user = await insert_user(s)
        await transfer(
            session=s,
            idempotency_key="fund",
            kind="deposit",
            legs=[Leg(clearing, -FUNDED), Leg(user_account(user, "cash"), FUNDED)],
        )

    connected = 0
    all_connected = asyncio.Event()
    go = asyncio.Event()
    pids: set[int] = set()

    async def withdraw(n: int) -> str:
        nonlocal connected
        async with maker() as s:
            # Its own connection, open before the start signal.
            pids.add(int(await s.scalar(text("SELECT pg_backend_pid()")) or 0))
            connected += 1
            if connected == PARALLEL:
                all_connected.set()
            await go.wait()
            try:
                await transfer(
                    session=s,
                    idempotency_key=f"w-{n}-{uuid.uuid4().hex[:6]}",
                    kind="withdrawal",
                    legs=[
                        Leg(user_account(user, "cash"), -EACH),
                        Leg(clearing, EACH - 1),
                        Leg(system_account("fee_revenue"), 1),
                    ],
                    pending=True,
                )
            except InsufficientFunds:
                await s.rollback()
                return "refused"
            await s.commit()
            return "held"

    tasks = [asyncio.create_task(withdraw(n)) for n in range(PARALLEL)]
    try:
        await asyncio.wait_for(all_connected.wait(), 60)
        go.set()
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks), 120)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    assert len(pids) == PARALLEL
    assert outcomes.count("held") == FUNDED // EACH
    assert outcomes.count("refused") == PARALLEL - FUNDED // EACH
    async with maker() as s:
        b = await get_balance(session=s, user_id=user)
        assert (b.available, b.held, b.total) == (0, FUNDED, FUNDED)
        assert (await trial_balance(session=s)).balanced
        pending = await s.scalar(
            text("SELECT count(*) FROM ledger_transfers WHERE status = 'pending'")
        )
    assert pending == FUNDED // EACH
    await engine.dispose()
