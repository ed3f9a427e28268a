"""Reconciliation heals a dropped event and alerts on what it cannot explain (through the
admin HTTP endpoints); a real `pull worker` killed (SIGKILL) in the middle of applying a fill
is started again and applies it exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from pull import devstack
from pull.brokerage.activities import SCHEDULE_ID
from pull.brokerage.providers.base import OrderRequest
from pull.brokerage.providers.sandbox import SandboxBroker
from pull.ledger import service as ledger
from tests.brokerage.conftest import Drain, TraderFactory
from tests.conftest import Services, UserFactory, _spawn, stop_process, wait_http

pytestmark = pytest.mark.usefixtures("market_open")


async def _last_event_id(maker: async_sessionmaker[AsyncSession]) -> str:
    async with maker() as s:
        value = await s.scalar(
            text("SELECT id FROM brokerage_sandbox_events ORDER BY seq DESC LIMIT 1")
        )
    assert value
    return str(value)


async def _transfers(maker: async_sessionmaker[AsyncSession], order_id: str) -> list[str]:
    async with maker() as s:
        rows = await s.execute(
            text("SELECT idempotency_key FROM ledger_transfers WHERE reference = :r ORDER BY id"),
            {"r": f"brokerage_order:{order_id}"},
        )
        return [r[0] for r in rows]


async def test_reconciliation_heals_a_dropped_fill_and_alerts_on_the_unexplained(
    trader_factory: TraderFactory,
    user_factory: UserFactory,
    drain: Drain,
    sandbox: SandboxBroker,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    t = await trader_factory(cash=100_000)
    admin = await user_factory(admin=True)
    order = await t.order(symbol="BTC/USD", side="buy", notional=5_000, time_in_force="gtc")
    # the stream loses the order's events: the cursor moves past them unapplied
    last = await _last_event_id(sessionmaker)
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text("INSERT INTO brokerage_cursors (name, last_id) VALUES ('trades', :i)"),
            {"i": last},
        )
    assert await drain() == 0
    stuck = await t.get(f"/orders/{order['id']}")
    assert stuck["status"] == "new" and stuck["hold_cents"] == 5_000
    r = await t.http.post("/api/admin/brokerage/reconcile", headers=t.headers)
    assert r.status_code == 403  # admins only
    r = await t.http.post("/api/admin/brokerage/reconcile", headers=admin.headers)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["fills_healed"] == 1 and report["alerts"] == 0, report
    healed = await t.get(f"/orders/{order['id']}")
    assert healed["status"] == "filled" and healed["hold_cents"] == 0
    assert healed["filled_cents"] == 5_000 or 4_999 <= healed["filled_cents"] <= 5_000
    fills = (await t.get(f"/orders/{order['id']}/fills"))["items"]
    assert [f["source"] for f in fills] == ["reconcile"]
    # the dropped events arrive after all (a replay from the start): nothing moves twice
    async with sessionmaker() as s, s.begin():
        await s.execute(text("DELETE FROM brokerage_cursors"))
    assert await drain() >= 2
    again = await t.get(f"/orders/{order['id']}")
    assert again["filled_cents"] == healed["filled_cents"]
    assert len((await t.get(f"/orders/{order['id']}/fills"))["items"]) == 1
    async with sessionmaker() as s:
        bal = await ledger.get_balance(session=s, user_id=t.user.id)
        assert bal.available == 100_000 - healed["filled_cents"] and bal.held == 0
        assert (await ledger.trial_balance(session=s)).balanced
    r = await t.http.post("/api/admin/brokerage/reconcile", headers=admin.headers)
    assert r.json()["alerts"] == 0 and r.json()["fills_healed"] == 0

    # an order placed at the broker behind PULL's back: nothing PULL can explain
    async with sessionmaker() as s:
        account_id = await s.scalar(
            text("SELECT broker_account_id FROM brokerage_accounts WHERE user_id = :u"),
            {"u": t.user.id},
        )
    await sandbox.submit_order(
        account_id=str(account_id),
        request=OrderRequest(
            symbol="BTC/USD",
            side="sell",
            type="market",
            time_in_force="gtc",
            client_order_id="outside-pull",
            qty=Decimal("0.00001"),
        ),
    )
    await drain()
    r = await t.http.post("/api/admin/brokerage/reconcile", headers=admin.headers)
    assert r.json()["alerts"] == 2, r.json()  # position and cash differ
    r = await t.http.get("/api/admin/brokerage/alerts", headers=admin.headers)
    kinds = sorted(a["kind"] for a in r.json()["items"])
    assert kinds == ["cash_mismatch", "position_mismatch", "unknown_order"], kinds
    r = await t.http.post("/api/admin/brokerage/reconcile", headers=admin.headers)
    assert r.json()["alerts"] == 0  # raised once, not on every run


async def test_worker_killed_while_applying_a_fill_applies_it_once(
    services: Services,
    trader_factory: TraderFactory,
    drain: Drain,
    sessionmaker: async_sessionmaker[AsyncSession],
    temporal_client: Client,
) -> None:
    t = await trader_factory(cash=100_000)
    first = await t.order(symbol="ETH/USD", side="buy", notional=2_000, time_in_force="gtc")
    await drain()  # the position row exists now
    assert (await t.get(f"/orders/{first['id']}"))["status"] == "filled"

    queue = f"test-{uuid.uuid4().hex}"
    env = {
        "TEMPORAL_TASK_QUEUE": queue,
        "BROKERAGE_EVENT_POLL_SECONDS": "0.05",
        "BROKERAGE_RECONCILE_SECONDS": "3600",
        "OUTBOX_POLL_SECONDS": "0.2",
    }

    def start_worker(n: int) -> subprocess.Popen[bytes]:
        port = devstack.free_port()
        log = services.data_dir / f"brokerage-worker-{queue}-{n}.log"
        proc = _spawn(["worker"], services.env(METRICS_PORT=str(port), **env), log)
        wait_http(f"http://127.0.0.1:{port}/metrics", timeout=90, proc=proc)
        return proc

    worker = start_worker(1)
    second: dict[str, object] = {}
    try:
        # hold the position row: the worker's fill transaction blocks right before the ledger
        async with sessionmaker() as blocker:
            await blocker.execute(
                text(
                    "SELECT 1 FROM brokerage_positions WHERE user_id = :u AND symbol = 'ETH/USD' "
                    "FOR UPDATE"
                ),
                {"u": t.user.id},
            )
            second = await t.order(
                symbol="ETH/USD", side="buy", notional=3_000, time_in_force="gtc"
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                async with sessionmaker() as s:
                    waiting = await s.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND query ILIKE '%brokerage_positions%'"
                        )
                    )
                if waiting:
                    break
                await asyncio.sleep(0.2)
            assert waiting, "the worker never reached the fill"
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
            await blocker.rollback()
        mid = await t.get(f"/orders/{second['id']}")
        assert mid["filled_cents"] == 0 and mid["hold_cents"] == 3_000  # nothing half-applied
        worker = start_worker(2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = await t.get(f"/orders/{second['id']}")
            if done["status"] == "filled" and done["hold_cents"] == 0:
                break
            await asyncio.sleep(1.0)  # (the API's rate limit: 100 reads a minute)
        assert done["status"] == "filled", done
        os.killpg(worker.pid, signal.SIGKILL)  # and once more: nothing is applied again
        worker.wait(10)
        worker = start_worker(3)
        await asyncio.sleep(2)
    finally:
        stop_process(worker)
        try:
            await temporal_client.get_schedule_handle(SCHEDULE_ID).delete()
        except Exception:  # noqa: S110 - not created
            pass
    keys = await _transfers(sessionmaker, str(second["id"]))
    assert keys == [
        f"brokerage:order:{second['id']}:hold:0",
        f"brokerage:order:{second['id']}:hold:0:post",
    ], keys
    final = await t.get(f"/orders/{second['id']}")
    pos = (await t.get("/positions"))["items"][0]
    assert (
        pos["cost_cents"]
        == final["filled_cents"] + (await t.get(f"/orders/{first['id']}"))["filled_cents"]
    )
    async with sessionmaker() as s:
        bal = await ledger.get_balance(session=s, user_id=t.user.id)
        assert bal.available + pos["cost_cents"] == 100_000 and bal.held == 0
        assert (await ledger.trial_balance(session=s)).balanced
