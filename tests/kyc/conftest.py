"""KYC test helpers: a per-test API served over real HTTP (so sandbox providers can deliver
their signed webhooks to it), an outbox relay, a worker on the test's own task queue, and
vendor-signed webhook senders."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from temporalio.client import Client
from temporalio.worker import Worker

from pull import devstack
from pull.app import create_app
from pull.config import Settings
from pull.kit.runtime import set_worker_runtime, worker_runtime
from pull.kyc.providers import signing
from pull.worker import build_worker, init_runtime, outbox_relay
from tests.conftest import Services, TestUser, make_settings

VALID = {
    "target_tier": "standard",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "dob": "1985-12-10",
    "address": {
        "line1": "12 Analytical Engine Way",
        "city": "Springfield",
        "state": "IL",
        "postal_code": "62701",
        "country": "US",
    },
    "phone": "+15550001111",
}


def application(**overrides: Any) -> dict[str, Any]:
    return {**VALID, **overrides}


@contextlib.asynccontextmanager
async def serve(app: Starlette | FastAPI, port: int) -> AsyncIterator[str]:
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
class KycEnv:
    settings: Settings
    base_url: str
    http: httpx.AsyncClient
    temporal: Client
    task_queue: str
    maker: async_sessionmaker[AsyncSession]
    users: list[uuid.UUID] = field(default_factory=list)

    def worker(self) -> Worker:
        return build_worker(self.temporal, self.settings, task_queue=self.task_queue)

    async def start(self, user: TestUser, **overrides: Any) -> httpx.Response:
        self.users.append(user.id)
        return await self.http.post(
            "/api/v1/kyc/start", json=application(**overrides), headers=user.headers
        )

    async def status(self, user: TestUser) -> dict[str, Any]:
        r = await self.http.get("/api/v1/kyc/status", headers=user.headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def wait_for(
        self,
        user: TestUser,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 40,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = await self.status(user)
            if predicate(body):
                return body
            await asyncio.sleep(0.2)
        raise AssertionError(f"status never matched: {json.dumps(body)[:2000]}")

    async def wait_status(
        self, user: TestUser, *statuses: str, timeout: float = 40
    ) -> dict[str, Any]:
        return await self.wait_for(user, lambda b: b["status"] in statuses, timeout)


KycEnvFactory = Callable[..., Awaitable[KycEnv]]

FAST = {
    "KYC_SANDBOX_DELAY_SECONDS": 0.2,
    "OUTBOX_POLL_SECONDS": 0.1,
    "RATE_LIMIT_ENABLED": False,
}


@pytest.fixture
async def kyc_env(
    services: Services,
    temporal_client: Client,
    task_queue: str,
) -> AsyncIterator[KycEnvFactory]:
    """`env = await kyc_env(**settings)`: the API on a real port, the outbox relayed to the
    test's task queue; the test runs the worker itself (`async with env.worker(): ...`)."""
    stack = contextlib.AsyncExitStack()
    envs: list[KycEnv] = []
    try:
        previous = worker_runtime()
    except RuntimeError:
        previous = None

    async def make(**overrides: Any) -> KycEnv:
        port = devstack.free_port()
        settings = make_settings(
            services,
            TEMPORAL_TASK_QUEUE=task_queue,
            KYC_WEBHOOK_BASE_URL=f"http://127.0.0.1:{port}",
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
        env = KycEnv(settings, url, http, temporal_client, task_queue, runtime.sessionmaker)
        envs.append(env)
        return env

    try:
        yield make
    finally:
        for env in envs:
            for user_id in env.users:
                with contextlib.suppress(Exception):
                    await temporal_client.get_workflow_handle(f"kyc-{user_id}").terminate()
        await stack.aclose()
        set_worker_runtime(previous)


# --- playing the vendors ---------------------------------------------------------------------


def persona_headers(
    settings: Settings, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        signing.PERSONA_HEADER: signing.persona_signature(
            settings.persona_webhook_secret, body, timestamp
        ),
    }


def checkr_headers(settings: Settings, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        signing.CHECKR_HEADER: signing.hex_hmac(settings.checkr_webhook_secret, body),
    }


def parallel_headers(settings: Settings, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        signing.PARALLEL_HEADER: signing.hex_hmac(settings.parallel_markets_webhook_secret, body),
    }


def dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


@pytest.fixture
def pii_values() -> Iterator[list[str]]:
    """The plaintext PII of `VALID`, for checks that it appears nowhere it should not.

    (The SSN digits are checked where they are stored: four digits alone also occur by chance
    inside ids and ciphertext.)"""
    yield ["Lovelace", "1985-12-10", "Analytical Engine", "Springfield", "15550001111"]
