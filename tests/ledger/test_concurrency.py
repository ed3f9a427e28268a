"""200 withdrawals at once, each on its own database connection, overdraw nothing."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from pull.config import Settings
from pull.kit.runtime import worker_runtime
from pull.ledger.service import (
    InsufficientFunds,
    Leg,
    get_balance,
    system_account,
    transfer,
    trial_balance,
    user_account,
)
from tests.ledger.conftest import NewUser

PARALLEL = 200
EACH = 100
FUNDED = 10_000  # room for exactly 100 of the 200


async def test_parallel_withdrawals_from_separate_connections_never_overdraw(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    new_user: NewUser,
    app: FastAPI,
) -> None:
    user = await new_user()
    clearing = system_account("bank_clearing")
    async with sessionmaker() as s, s.begin():
        await transfer(
            session=s,
            idempotency_key="fund",
            kind="deposit",
            legs=[Leg(clearing, -FUNDED), Leg(user_account(user, "cash"), FUNDED)],
        )
    # Leave room for 200 fresh connections under the server's max_connections (200): close
    # the idle pooled connections of this test session's engines (they reconnect lazily).
    await sessionmaker.kw["bind"].dispose()
    await app.state.engine.dispose()
    with contextlib.suppress(RuntimeError):
        await worker_runtime().engine.dispose()

    engine = create_async_engine(settings.database_url, poolclass=NullPool)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    connected = 0
    all_connected = asyncio.Event()
    go = asyncio.Event()

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
                    idempotency_key=f"w-{n}",
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

    pids: set[int] = set()
    tasks = [asyncio.create_task(withdraw(n)) for n in range(PARALLEL)]
    try:
        await asyncio.wait_for(all_connected.wait(), 60)
        go.set()
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks), 120)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.dispose()

    assert len(pids) == PARALLEL

    assert outcomes.count("held") == FUNDED // EACH
    assert outcomes.count("refused") == PARALLEL - FUNDED // EACH
    async with sessionmaker() as s:
        b = await get_balance(session=s, user_id=user)
        assert (b.available, b.held, b.total) == (0, FUNDED, FUNDED)
        assert (await trial_balance(session=s)).balanced
        pending = await s.scalar(
            text("SELECT count(*) FROM ledger_transfers WHERE status = 'pending'")
        )
    assert pending == FUNDED // EACH
