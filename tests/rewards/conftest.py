"""Rewards test helpers: admin calls over HTTP, outbox events relayed through the real relay
(with the rewards consumer in front, as in `pull worker`), a worker on the test's queue."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from pull.app import create_app
from pull.config import Settings
from pull.kit.outbox import OutboxRelay, emit
from pull.ledger.service import trial_balance
from pull.rewards import service as rewards
from pull.worker import build_worker, outbox_batch_handlers, outbox_handlers
from tests.conftest import AppRunner, Services, TestUser, UserFactory, asgi_client, make_settings


@dataclass
class RewardsEnv:
    http: httpx.AsyncClient
    maker: async_sessionmaker[AsyncSession]
    admin: TestUser
    admin2: TestUser
    relay: OutboxRelay
    temporal: Client
    settings: Settings
    task_queue: str
    services: Services
    workflow_ids: list[str] = field(default_factory=list)
    app: Any = None

    def worker(self) -> Worker:
        return build_worker(self.temporal, self.settings, task_queue=self.task_queue)

    async def emit(self, topic: str, payload: dict[str, Any]) -> None:
        async with self.maker() as s, s.begin():
            emit(s, topic=topic, key=str(payload.get("user_id", "")), payload=payload)

    async def drain(self) -> int:
        total = 0
        for _ in range(50):
            n = await self.relay.relay_once()
            total += n
            if n == 0:
                break
        return total

    async def rule(self, **body: Any) -> dict[str, Any]:
        r = await self.http.post("/api/admin/rewards/rules", json=body, headers=self.admin.headers)
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    async def item(self, **body: Any) -> dict[str, Any]:
        r = await self.http.post(
            "/api/admin/rewards/catalog", json=body, headers=self.admin.headers
        )
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    async def grant(self, user: TestUser, points: int) -> None:
        r = await self.http.post(
            "/api/admin/rewards/adjustments",
            json={"user_id": str(user.id), "points": points, "reason": "test grant"},
            headers=self.admin.headers,
        )
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "applied", r.text

    async def balance(self, user: TestUser) -> dict[str, Any]:
        r = await self.http.get("/api/v1/rewards/balance", headers=user.headers)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    async def redeem(
        self,
        user: TestUser,
        reward_id: str,
        quantity: int = 1,
        key: str | None = None,
        **extra: Any,
    ) -> httpx.Response:
        body = {"reward_id": reward_id, "quantity": quantity, **extra}
        r = await self.http.post(
            "/api/v1/rewards/redeem",
            json=body,
            headers={**user.headers, "Idempotency-Key": key or str(uuid.uuid4())},
        )
        if r.status_code == 201:
            self.workflow_ids.append(f"redemption-{r.json()['id']}")
        return r

    async def wait_redemption(
        self, user: TestUser, rid: str, *statuses: str, timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            await self.drain()
            r = await self.http.get(f"/api/v1/rewards/redemptions/{rid}", headers=user.headers)
            assert r.status_code == 200, r.text
            body = r.json()
            if body["status"] in statuses:
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"redemption {rid} never reached {statuses}: {body}")

    async def assert_books(self) -> None:
        async with self.maker() as s:
            tb = await trial_balance(session=s)
            assert tb.balanced, tb
            check = await rewards.check_consistency(session=s)
            assert not check.mismatched, check
            negative = await s.scalar(
                text(
                    "SELECT count(*) FROM ledger_accounts "
                    "WHERE owner_id IS NOT NULL AND balance - pending_debits < 0"
                )
            )
            assert negative == 0


@pytest.fixture
async def rw(
    services: Services,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
    worker_runtime: Any,
    temporal_client: Client,
    task_queue: str,
) -> AsyncIterator[RewardsEnv]:
    settings = make_settings(services, TEMPORAL_TASK_QUEUE=task_queue, RATE_LIMIT_ENABLED=False)
    stack = contextlib.AsyncExitStack()
    app = await stack.enter_async_context(AppRunner(create_app(settings)))
    client = await stack.enter_async_context(asgi_client(app))
    relay = OutboxRelay(
        sessionmaker,
        outbox_handlers(temporal_client, settings),
        batch_handlers=outbox_batch_handlers(),
    )
    admin = await user_factory(admin=True)
    admin2 = await user_factory(admin=True)
    env = RewardsEnv(
        client, sessionmaker, admin, admin2, relay, temporal_client, settings, task_queue, services
    )
    env.app = app
    try:
        yield env
    finally:
        for workflow_id in env.workflow_ids:
            with contextlib.suppress(Exception):
                await temporal_client.get_workflow_handle(workflow_id).terminate()
        await stack.aclose()
