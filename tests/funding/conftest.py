"""Funding test helpers: the API on a real port (the Plaid sandbox delivers its signed
webhooks there), the outbox relayed to the test's task queue, a linked bank account."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from pull import devstack
from pull.app import create_app
from pull.config import Settings
from pull.kit.runtime import set_worker_runtime, worker_runtime
from pull.ledger.service import get_balance, trial_balance
from pull.worker import build_worker, init_runtime, outbox_relay
from tests.conftest import Services, TestUser, UserFactory, make_settings

FAST = {
    "PLAID_SANDBOX_POST_SECONDS": 0.2,
    "PLAID_SANDBOX_SETTLE_SECONDS": 0.2,
    "PLAID_SANDBOX_RETURN_SECONDS": 0.2,
    "OUTBOX_POLL_SECONDS": 0.05,
    "RATE_LIMIT_ENABLED": False,
}


@contextlib.asynccontextmanager
async def serve(app: FastAPI, port: int) -> AsyncIterator[str]:
    """Run `app` with uvicorn on 127.0.0.1:`port` inside this event loop."""
    # (keep-alive longer than httpx's 5 s: a worker's start can hold the loop past it, and a
    # server that closes an idle connection first races the client's next request on it)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on", timeout_keep_alive=60
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 15
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class FundingEnv:
    settings: Settings
    base_url: str
    http: httpx.AsyncClient
    temporal: Client
    task_queue: str
    maker: async_sessionmaker[AsyncSession]
    workflow_ids: list[str] = field(default_factory=list)

    def worker(self) -> Worker:
        return build_worker(self.temporal, self.settings, task_queue=self.task_queue)

    async def link_bank(self, user: TestUser) -> str:
        r = await self.http.post(
            "/api/v1/funding/sandbox/public-token",
            json={"username": "user_good", "password": "pass_good"},
            headers=user.headers,
        )
        assert r.status_code == 200, r.text
        # The account ids come with the public token, as Link's onSuccess metadata has them.
        link = r.json()
        checking = next(a for a in link["accounts"] if a["subtype"] == "checking")
        r = await self.http.post(
            "/api/v1/funding/bank-accounts",
            json={"public_token": link["public_token"], "account_id": checking["account_id"]},
            headers=user.headers,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def deposit(
        self, user: TestUser, bank: str, amount: int, key: str | None = None
    ) -> dict[str, Any]:
        r = await self.http.post(
            "/api/v1/funding/deposits",
            json={"amount": amount, "bank_account_id": bank},
            headers={**user.headers, "Idempotency-Key": key or str(uuid.uuid4())},
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        self.workflow_ids.append(f"deposit-{body['id']}")
        return body

    async def withdraw(
        self,
        user: TestUser,
        bank: str,
        amount: int,
        speed: str = "standard",
        key: str | None = None,
    ) -> httpx.Response:
        r = await self.http.post(
            "/api/v1/funding/withdrawals",
            json={"amount": amount, "bank_account_id": bank, "speed": speed},
            headers={**user.headers, "Idempotency-Key": key or str(uuid.uuid4())},
        )
        if r.status_code == 201:
            self.workflow_ids.append(f"withdrawal-{r.json()['id']}")
        return r

    async def get(self, user: TestUser, kind: str, subject_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/api/v1/funding/{kind}/{subject_id}", headers=user.headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def wait_status(
        self, user: TestUser, kind: str, subject_id: str, *statuses: str, timeout: float = 40
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = await self.get(user, kind, subject_id)
            if body["status"] in statuses:
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"{kind} {subject_id} never reached {statuses}: {body}")

    async def balance(self, user: TestUser) -> dict[str, int]:
        async with self.maker() as s:
            b = await get_balance(session=s, user_id=user.id)
        return {
            "available": b.available,
            "held": b.held,
            "pending_deposits": b.pending_deposits,
            "withdrawable": b.withdrawable,
            "total": b.total,
        }

    async def assert_books(self) -> None:
        async with self.maker() as s:
            tb = await trial_balance(session=s)
            assert tb.balanced, tb
            negative = await s.scalar(
                text(
                    "SELECT count(*) FROM ledger_accounts "
                    "WHERE owner_id IS NOT NULL AND balance - pending_debits < 0"
                )
            )
            assert negative == 0

    async def transfers(self, reference: str) -> list[str]:
        async with self.maker() as s:
            rows = await s.execute(
                text(
                    "SELECT idempotency_key FROM ledger_transfers WHERE reference = :r ORDER BY id"
                ),
                {"r": reference},
            )
            return [r[0] for r in rows]


FundingEnvFactory = Callable[..., Awaitable[FundingEnv]]


@pytest.fixture
async def funding_env(
    services: Services, temporal_client: Client, task_queue: str
) -> AsyncIterator[FundingEnvFactory]:
    """`env = await funding_env(**settings)`; the test runs the worker itself."""
    stack = contextlib.AsyncExitStack()
    envs: list[FundingEnv] = []
    try:
        previous = worker_runtime()
    except RuntimeError:
        previous = None

    async def make(**overrides: Any) -> FundingEnv:
        port = devstack.free_port()
        settings = make_settings(
            services,
            TEMPORAL_TASK_QUEUE=task_queue,
            PLAID_WEBHOOK_URL=f"http://127.0.0.1:{port}/webhooks/plaid",
            **{**FAST, **overrides},
        )
        url = await stack.enter_async_context(serve(create_app(settings), port))
        runtime = init_runtime(settings)
        relay = outbox_relay(runtime.sessionmaker, temporal_client, settings)
        stop = asyncio.Event()
        relay_task = asyncio.create_task(relay.run(stop))

        async def shutdown() -> None:
            stop.set()
            await relay_task
            await runtime.redis.aclose()
            await runtime.engine.dispose()

        stack.push_async_callback(shutdown)
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=15))
        env = FundingEnv(settings, url, http, temporal_client, task_queue, runtime.sessionmaker)
        envs.append(env)
        return env

    try:
        yield make
    finally:
        for env in envs:
            for workflow_id in env.workflow_ids:
                with contextlib.suppress(Exception):
                    await temporal_client.get_workflow_handle(workflow_id).terminate()
        await stack.aclose()
        set_worker_runtime(previous)


@pytest.fixture
def funded_user(
    user_factory: UserFactory, kyc_tier: Callable[[uuid.UUID, str], Awaitable[None]]
) -> Callable[..., Awaitable[TestUser]]:
    async def make(tier: str = "basic") -> TestUser:
        user = await user_factory()
        await kyc_tier(user.id, tier)
        return user

    return make
