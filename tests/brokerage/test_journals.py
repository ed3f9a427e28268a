"""A journal the broker executed but PULL never marked (a crash between the two) is found at
the broker by its key on the retry and not executed again: the broker's cash and PULL's books
still agree (the admin reconciliation raises nothing)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.brokerage import accounts
from pull.brokerage.providers.sandbox import SandboxBroker
from tests.brokerage.conftest import Drain, TraderFactory
from tests.conftest import UserFactory

pytestmark = pytest.mark.usefixtures("market_open")


async def _forget(maker: async_sessionmaker[AsyncSession], key: str) -> None:
    """PULL's state after a crash right after the broker executed the journal."""
    async with maker() as s, s.begin():
        r = await s.execute(
            text(
                "UPDATE brokerage_journals SET status = 'pending', broker_journal_id = NULL"
                " WHERE key = :k AND status = 'executed'"
            ),
            {"k": key},
        )
        assert r.rowcount == 1, key  # type: ignore[attr-defined]


async def _at_broker(maker: async_sessionmaker[AsyncSession], key: str) -> int:
    async with maker() as s:
        return int(
            await s.scalar(
                text("SELECT count(*) FROM brokerage_sandbox_journals WHERE description = :k"),
                {"k": key},
            )
            or 0
        )


async def _status(maker: async_sessionmaker[AsyncSession], key: str) -> str:
    async with maker() as s:
        return str(
            await s.scalar(text("SELECT status FROM brokerage_journals WHERE key = :k"), {"k": key})
        )


async def test_a_journal_executed_before_a_crash_is_not_executed_again(
    trader_factory: TraderFactory,
    user_factory: UserFactory,
    drain: Drain,
    sandbox: SandboxBroker,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    t = await trader_factory(cash=100_000)
    admin = await user_factory(admin=True)
    # a qty market buy holds a buffer over the quote: its unused part is swept back
    order = await t.order(symbol="BTC/USD", side="buy", qty="0.0005", time_in_force="gtc")
    fund, sweep = f"order:{order['id']}:fund", f"order:{order['id']}:sweep"
    await drain()
    assert (await t.get(f"/orders/{order['id']}"))["status"] == "filled"
    assert await _status(sessionmaker, fund) == "executed"

    # the sweep journal (the unused buffer back to the firm): executed, then forgotten
    assert await _status(sessionmaker, sweep) == "executed"
    await _forget(sessionmaker, sweep)
    await drain()  # the consumer retries pending journals when idle
    assert await _status(sessionmaker, sweep) == "executed"
    assert await _at_broker(sessionmaker, sweep) == 1

    # the funding journal: a retry leaves it to its order request while it is fresh ...
    await _forget(sessionmaker, fund)
    assert await accounts.execute_journals(maker=sessionmaker, broker=sandbox) == 0
    assert await _status(sessionmaker, fund) == "pending"
    # ... and, once it is not, finds it at the broker instead of sending it again
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text("UPDATE brokerage_journals SET created_at = :t WHERE key = :k"),
            {"t": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5), "k": fund},
        )
    assert await accounts.execute_journals(maker=sessionmaker, broker=sandbox) == 1
    assert await _status(sessionmaker, fund) == "executed"
    assert await _at_broker(sessionmaker, fund) == 1

    r = await t.http.post(
        "/api/admin/brokerage/reconcile", params={"grace_seconds": 0}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["alerts"] == 0, r.json()
    r = await t.http.get("/api/admin/brokerage/alerts", headers=admin.headers)
    assert r.json()["items"] == [], r.json()
