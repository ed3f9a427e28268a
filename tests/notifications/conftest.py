"""Notifications test helpers: the app over ASGI, the real outbox relay (with every module's
handlers, as in `pull worker`) and a Temporal worker on the test's own task queue."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from pull.app import create_app
from pull.config import Settings
from pull.kit.outbox import OutboxRelay
from pull.worker import build_worker, outbox_relay
from tests.conftest import AppRunner, Services, TestUser, asgi_client, make_settings
from tests.exchange.conftest import create_market, fund


@dataclass
class NotifyEnv:
    http: httpx.AsyncClient
    maker: async_sessionmaker[AsyncSession]
    relay: OutboxRelay
    temporal: Client
    settings: Settings
    task_queue: str

    def worker(self) -> Worker:
        return build_worker(self.temporal, self.settings, task_queue=self.task_queue)

    async def drain(self) -> int:
        total = 0
        for _ in range(100):
            n = await self.relay.relay_once()
            total += n
            if n == 0:
                break
        return total

    async def sql(self, query: str, **params: Any) -> list[Any]:
        async with self.maker() as s:
            return list((await s.execute(text(query), params)).all())

    async def execute(self, query: str, **params: Any) -> None:
        async with self.maker() as s, s.begin():
            await s.execute(text(query), params)

    async def wait_delivered(
        self, notification_id: str, user: TestUser, timeout: float = 60
    ) -> dict[str, str]:
        """Relay and wait until no channel of the notification is pending."""
        deadline = time.monotonic() + timeout
        last: dict[str, str] = {}
        while time.monotonic() < deadline:
            await self.drain()
            r = await self.http.get(
                f"/api/v1/notifications/{notification_id}/deliveries", headers=user.headers
            )
            assert r.status_code == 200, r.text
            last = {d["channel"]: d["status"] for d in r.json()}
            if last and "pending" not in last.values():
                return last
            await asyncio.sleep(0.2)
        raise AssertionError(f"deliveries still pending: {last}")

    async def trade(
        self, maker_user: TestUser, taker_user: TestUser, ticker: str, price: int
    ) -> None:
        r = await self.http.post(
            "/api/v1/orders",
            json={"ticker": ticker, "side": "yes", "action": "buy", "count": 5, "yes_price": price},
            headers={**maker_user.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201, r.text
        r = await self.http.post(
            "/api/v1/orders",
            json={
                "ticker": ticker,
                "side": "no",
                "action": "buy",
                "count": 5,
                "no_price": 100 - price,
            },
            headers={**taker_user.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201 and r.json()["fill_count"] == 5, r.text


@pytest.fixture
async def nenv(
    services: Services,
    sessionmaker: async_sessionmaker[AsyncSession],
    worker_runtime: Any,
    temporal_client: Client,
    task_queue: str,
) -> AsyncIterator[NotifyEnv]:
    settings = make_settings(services, TEMPORAL_TASK_QUEUE=task_queue, RATE_LIMIT_ENABLED=False)
    stack = contextlib.AsyncExitStack()
    app = await stack.enter_async_context(AppRunner(create_app(settings)))
    client = await stack.enter_async_context(asgi_client(app))
    relay = outbox_relay(sessionmaker, temporal_client, settings)
    try:
        yield NotifyEnv(client, sessionmaker, relay, temporal_client, settings, task_queue)
    finally:
        await stack.aclose()


Trader = Callable[..., Awaitable[TestUser]]


@pytest.fixture
def funded(
    user_factory: Any, kyc_tier: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> Trader:
    async def make(cents: int = 100_000) -> TestUser:
        user: TestUser = await user_factory()
        await kyc_tier(user.id, "standard")
        await fund(sessionmaker, user.id, cents)
        return user

    return make


@pytest.fixture
def market(sessionmaker: async_sessionmaker[AsyncSession]) -> Callable[[], Awaitable[str]]:
    async def make() -> str:
        return await create_market(sessionmaker)

    return make
