"""RWA test helpers: the API on a real port with the outbox relayed to the test's task queue
(the test runs the worker itself), admins, investors with cash, an asset and an offering made
through the admin HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from pull import devstack
from pull.app import create_app
from pull.config import Settings
from pull.kit.runtime import set_worker_runtime, worker_runtime
from pull.ledger import service as ledger
from pull.rwa import service as rwa_service
from pull.worker import build_worker, init_runtime, outbox_relay
from tests.conftest import KycTierSetter, Services, TestUser, UserFactory, make_settings
from tests.funding.conftest import serve

FAST = {"OUTBOX_POLL_SECONDS": 0.05, "RATE_LIMIT_ENABLED": False, "RWA_LOCKUP_SECONDS": 0}

_cert_counter = iter(range(10_000_000, 99_999_999, 7919))


def new_cert(grade: int = 10) -> str:
    """A fresh sandbox certificate number graded `grade` (its last digit; 0 means 10)."""
    base = str(next(_cert_counter))[:-1]
    return base + str(grade % 10)


@dataclass
class RwaEnv:
    settings: Settings
    http: httpx.AsyncClient
    temporal: Client
    task_queue: str
    maker: async_sessionmaker[AsyncSession]
    make_user: UserFactory
    set_tier: KycTierSetter
    admins: list[TestUser] = field(default_factory=list)
    workflow_ids: list[str] = field(default_factory=list)

    def worker(self) -> Worker:
        return build_worker(self.temporal, self.settings, task_queue=self.task_queue)

    async def admin(self, index: int = 0) -> TestUser:
        while len(self.admins) <= index:
            self.admins.append(await self.make_user(admin=True))
        return self.admins[index]

    async def investor(self, cash: int = 0, tier: str = "basic") -> TestUser:
        user = await self.make_user()
        if tier != "none":
            await self.set_tier(user.id, tier)
        if cash:
            await self.fund(user.id, cash)
        return user

    async def fund(self, user_id: uuid.UUID, cash: int) -> None:
        """Cash from the bank, as a settled deposit would leave it (funding is not under test)."""
        async with self.maker() as s, s.begin():
            await ledger.transfer(
                session=s,
                idempotency_key=f"test:fund:{uuid.uuid4()}",
                kind="deposit_settled",
                legs=[
                    ledger.Leg(ledger.system_account("bank_clearing"), -cash),
                    ledger.Leg(ledger.user_account(user_id, "cash"), cash),
                ],
            )

    async def create_asset(self, **overrides: Any) -> dict[str, Any]:
        admin = await self.admin(0)
        consignor = overrides.pop("consignor", None) or await self.make_user()
        body = {
            "title": "1999 Pokemon Base Set Charizard Holo",
            "category": "card",
            "description": "Shadowless, first print",
            "grader": "PSA",
            "cert_number": new_cert(10),
            "grade": "10",
            "images": ["https://img.example/charizard-front.jpg"],
            "custodian": "PULL Vault (Delaware)",
            "vault_location": "Wilmington DE, bay 4",
            "insured_value_cents": 25_000_000,
            "consignor_id": str(consignor.id),
            **overrides,
        }
        r = await self.http.post("/api/admin/rwa/assets", json=body, headers=admin.headers)
        assert r.status_code == 201, r.text
        asset: dict[str, Any] = r.json()
        asset["_consignor"] = consignor
        return asset

    async def create_offering(self, asset_id: str, **overrides: Any) -> dict[str, Any]:
        admin = await self.admin(0)
        now = dt.datetime.now(dt.UTC)
        body = {
            "total_shares": 1000,
            "price_cents": 1000,
            "opens_at": (now - dt.timedelta(seconds=5)).isoformat(),
            "closes_at": (now + dt.timedelta(seconds=30)).isoformat(),
            "min_raise_cents": 500_000,
            "max_per_investor_bps": 1999,
            "kyc_tier": "basic",
            "sourcing_fee_bps": 500,
            **overrides,
        }
        r = await self.http.post(
            f"/api/admin/rwa/assets/{asset_id}/offerings", json=body, headers=admin.headers
        )
        assert r.status_code == 201, r.text
        offering: dict[str, Any] = r.json()
        return offering

    async def open_offering(self, offering_id: str) -> dict[str, Any]:
        second = await self.admin(1)
        r = await self.http.post(
            f"/api/admin/rwa/offerings/{offering_id}/open", headers=second.headers
        )
        assert r.status_code == 200, r.text
        self.workflow_ids.append(f"rwa-offering-{offering_id}")
        body: dict[str, Any] = r.json()
        return body

    async def subscribe(
        self, user: TestUser, offering_id: str, shares: int, key: str | None = None
    ) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/rwa/offerings/{offering_id}/subscribe",
            json={"shares": shares},
            headers={**user.headers, "Idempotency-Key": key or str(uuid.uuid4())},
        )

    async def get(self, path: str, user: TestUser | None = None) -> dict[str, Any]:
        who = user or await self.admin(0)
        r = await self.http.get(path, headers=who.headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def wait_asset(self, asset_id: str, *states: str, timeout: float = 40) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = await self.get(f"/api/v1/rwa/assets/{asset_id}")
            if body["state"] in states:
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"asset {asset_id} never reached {states}: {body['state']}")

    async def wait_offering(
        self, offering_id: str, *statuses: str, settled: bool = True, timeout: float = 40
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = await self.get(f"/api/v1/rwa/offerings/{offering_id}")
            if body["status"] in statuses and (not settled or body["settled_at"]):
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"offering {offering_id} never reached {statuses}: {body}")

    async def trading_asset(
        self, holders: list[tuple[TestUser, int]], price_cents: int = 1000, **asset: Any
    ) -> dict[str, Any]:
        """An asset trading, its shares held by `holders` (each given the cash its subscription
        costs): offered, subscribed over HTTP, then
        closed with the OfferingWorkflow's own steps run in-process (the workflow is tested in
        test_offering_workflow.py; here it would only cost its timers)."""
        made = await self.create_asset(**asset)
        total = sum(n for _, n in holders)
        offering = await self.create_offering(
            made["id"],
            total_shares=total,
            price_cents=price_cents,
            min_raise_cents=total * price_cents,
            max_per_investor_bps=10_000,
        )
        await self.open_offering(offering["id"])
        for user, shares in holders:
            await self.fund(user.id, shares * price_cents)  # what the subscription costs
            r = await self.subscribe(user, offering["id"], shares)
            assert r.status_code == 201, r.text
        oid = uuid.UUID(offering["id"])
        async with self.maker() as s, s.begin():
            await rwa_service.close_offering(session=s, offering_id=oid)
        async with self.maker() as s, s.begin():
            await rwa_service.settle_subscriptions(session=s, offering_id=oid, limit=10_000)
        async with self.maker() as s, s.begin():
            await rwa_service.finalize_offering(session=s, offering_id=oid, lockup_seconds=0)
        async with self.maker() as s, s.begin():
            state = await rwa_service.start_trading(session=s, asset_id=uuid.UUID(made["id"]))
        assert state == "trading"
        made["offering"] = offering
        return made

    async def order(
        self,
        user: TestUser,
        asset_id: str,
        side: str,
        price: int,
        quantity: int,
        tif: str = "gtc",
        key: str | None = None,
    ) -> httpx.Response:
        return await self.http.post(
            "/api/v1/rwa/orders",
            json={
                "asset_id": asset_id,
                "side": side,
                "price_cents": price,
                "quantity": quantity,
                "time_in_force": tif,
            },
            headers={**user.headers, "Idempotency-Key": key or str(uuid.uuid4())},
        )

    async def shares(self, user: TestUser, asset_id: str) -> tuple[int, int, int]:
        """(shares, reserved by open sells, cost basis) from /ownership."""
        own = await self.get("/api/v1/rwa/ownership", user)
        for item in own["items"]:
            if item["asset_id"] == asset_id:
                return item["shares"], item["shares_reserved"], item["cost_basis_cents"]
        return 0, 0, 0

    async def balance(self, user: TestUser) -> dict[str, int]:
        r = await self.http.get("/api/v1/balance", headers=user.headers)
        assert r.status_code == 200, r.text
        body: dict[str, int] = r.json()
        return body

    async def account(self, name: str, currency: str = "USD") -> int:
        async with self.maker() as s:
            return await ledger.account_balance(
                session=s, account=ledger.system_account(name, currency)
            )

    async def assert_books(self) -> None:
        async with self.maker() as s:
            tb = await ledger.trial_balance(session=s)
            assert tb.balanced, tb
            negative = await s.scalar(
                text(
                    "SELECT count(*) FROM ledger_accounts "
                    "WHERE owner_id IS NOT NULL AND balance - pending_debits < 0"
                )
            )
            assert negative == 0


RwaEnvFactory = Callable[..., Awaitable[RwaEnv]]


@pytest.fixture
async def rwa_env(
    services: Services,
    temporal_client: Client,
    task_queue: str,
    user_factory: UserFactory,
    kyc_tier: KycTierSetter,
) -> AsyncIterator[RwaEnvFactory]:
    stack = contextlib.AsyncExitStack()
    envs: list[RwaEnv] = []
    try:
        previous = worker_runtime()
    except RuntimeError:
        previous = None

    async def make(**overrides: Any) -> RwaEnv:
        port = devstack.free_port()
        settings = make_settings(services, TEMPORAL_TASK_QUEUE=task_queue, **{**FAST, **overrides})
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
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
        env = RwaEnv(
            settings,
            http,
            temporal_client,
            task_queue,
            runtime.sessionmaker,
            user_factory,
            kyc_tier,
        )
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
