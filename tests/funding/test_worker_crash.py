"""A real `pull worker` process killed (SIGKILL) in the middle of a deposit and started again:
the deposit completes and its money moves exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from pull import devstack
from pull.ledger.service import get_balance, trial_balance
from tests.conftest import Services, TestUser, _spawn, stop_process, wait_http

MakeUser = Callable[..., Awaitable[TestUser]]


async def _wait(client: httpx.AsyncClient, user: TestUser, deposit_id: str, status: str) -> None:
    deadline = time.monotonic() + 60
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        body = (
            await client.get(f"/api/v1/funding/deposits/{deposit_id}", headers=user.headers)
        ).json()
        if body.get("status") == status:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"deposit never reached {status}: {body}")


async def test_worker_killed_mid_deposit_moves_money_once(
    services: Services,
    funded_user: MakeUser,
    temporal_client: Client,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    queue = f"test-{uuid.uuid4().hex}"
    api_port = devstack.free_port()
    common = {
        "TEMPORAL_TASK_QUEUE": queue,
        "PLAID_WEBHOOK_URL": f"http://127.0.0.1:{api_port}/webhooks/plaid",
        "PLAID_SANDBOX_POST_SECONDS": "0.5",
        "PLAID_SANDBOX_SETTLE_SECONDS": "4",
        "OUTBOX_POLL_SECONDS": "0.1",
        "RATE_LIMIT_ENABLED": "false",  # the test polls the deposit's status
    }
    url = f"http://127.0.0.1:{api_port}"
    api = _spawn(
        ["api"],
        services.env(PORT=str(api_port), HOST="127.0.0.1", **common),
        services.data_dir / f"funding-api-{queue}.log",
    )
    wait_http(f"{url}/health/live", proc=api)

    def start_worker(n: int) -> subprocess.Popen[bytes]:
        port = devstack.free_port()
        log = services.data_dir / f"funding-worker-{queue}-{n}.log"
        proc = _spawn(["worker"], services.env(METRICS_PORT=str(port), **common), log)
        wait_http(f"http://127.0.0.1:{port}/metrics", proc=proc)
        return proc

    worker = start_worker(1)
    deposit_id = ""
    try:
        user = await funded_user("basic")
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            r = await client.post(
                "/api/v1/funding/sandbox/public-token", json={}, headers=user.headers
            )
            public_token = r.json()["public_token"]
            account_id = r.json()["accounts"][0]["account_id"]
            r = await client.post(
                "/api/v1/funding/bank-accounts",
                json={"public_token": public_token, "account_id": account_id},
                headers=user.headers,
            )
            assert r.status_code == 201, r.text
            r = await client.post(
                "/api/v1/funding/deposits",
                json={"amount": 4_200, "bank_account_id": r.json()["id"]},
                headers={**user.headers, "Idempotency-Key": "crash-test"},
            )
            assert r.status_code == 201, r.text
            deposit_id = r.json()["id"]
            await _wait(client, user, deposit_id, "posted")
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
            await asyncio.sleep(5)  # `settled` falls due while no worker runs
            body = (
                await client.get(f"/api/v1/funding/deposits/{deposit_id}", headers=user.headers)
            ).json()
            assert body["status"] == "posted"
            worker = start_worker(2)
            await _wait(client, user, deposit_id, "settled")
    finally:
        stop_process(worker)
        stop_process(api)
        if deposit_id:
            for wid in (f"deposit-{deposit_id}",):
                try:
                    await temporal_client.get_workflow_handle(wid).terminate()
                except Exception:  # noqa: S110 - already finished
                    pass
    async with sessionmaker() as s:
        keys = [
            row[0]
            for row in await s.execute(
                text(
                    "SELECT idempotency_key FROM ledger_transfers WHERE reference = :r ORDER BY id"
                ),
                {"r": f"deposit:{deposit_id}"},
            )
        ]
        assert keys == [f"deposit:{deposit_id}:initiated", f"deposit:{deposit_id}:settled"]
        b = await get_balance(session=s, user_id=user.id)
        assert (b.available, b.total) == (4_200, 4_200)
        assert (await trial_balance(session=s)).balanced
