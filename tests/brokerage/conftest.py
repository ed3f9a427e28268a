"""Brokerage test helpers: a KYC-approved, funded customer with a broker account (opened
through the API), the sandbox broker, and draining its trade event stream in-process."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.brokerage.events import consume
from pull.brokerage.providers.sandbox import SandboxBroker
from pull.config import Settings
from pull.kit.crypto import FieldCipher
from pull.kyc.models import KycApplication
from pull.ledger import service as ledger
from tests.conftest import KycTierSetter, TestUser, UserFactory, asgi_client


@dataclass
class Trader:
    user: TestUser
    http: httpx.AsyncClient

    @property
    def headers(self) -> dict[str, str]:
        return self.user.headers

    async def order(self, expect: int | None = 201, **body: Any) -> dict[str, Any]:
        body.setdefault("client_order_id", uuid.uuid4().hex)
        r = await self.http.post("/api/v1/trading/orders", json=body, headers=self.headers)
        if expect is not None:
            assert r.status_code == expect, r.text
        out: dict[str, Any] = r.json()
        return out

    async def get(self, path: str, expect: int = 200, **params: Any) -> Any:
        r = await self.http.get(f"/api/v1/trading{path}", headers=self.headers, params=params)
        assert r.status_code == expect, r.text
        return r.json()


async def approve_kyc(
    maker: async_sessionmaker[AsyncSession], settings: Settings, user_id: uuid.UUID
) -> None:
    """An approved standard application holding the applicant's data (the KYC flow itself is
    tested in tests/kyc; here it is the gate before the broker account, not the subject)."""
    cipher = FieldCipher(settings.field_encryption_keys)
    address = {
        "line1": "20 W 34th St",
        "city": "New York",
        "state": "NY",
        "postal_code": "10001",
        "country": "US",
    }
    async with maker() as s, s.begin():
        s.add(
            KycApplication(
                user_id=user_id,
                target_tier="standard",
                status="approved",
                steps={},
                first_name_enc=cipher.encrypt("Ada"),
                last_name_enc=cipher.encrypt("Lovelace"),
                dob_enc=cipher.encrypt("1990-12-10"),
                address_enc=cipher.encrypt(json.dumps(address)),
                phone_enc=cipher.encrypt("+15555550100"),
                ssn_last4_enc=cipher.encrypt("1234"),
            )
        )


async def fund(maker: async_sessionmaker[AsyncSession], user_id: uuid.UUID, cents: int) -> None:
    """Cash as a settled deposit would leave it (funding is tested in tests/funding)."""
    async with maker() as s, s.begin():
        await ledger.transfer(
            session=s,
            idempotency_key=f"test-fund:{user_id}:{uuid.uuid4()}",
            kind="deposit_settled",
            legs=[
                ledger.Leg(ledger.system_account("bank_clearing"), -cents),
                ledger.Leg(ledger.user_account(user_id, "cash"), cents),
            ],
        )


TraderFactory = Callable[..., Awaitable[Trader]]


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as c:
        yield c


@pytest.fixture
def trader_factory(
    user_factory: UserFactory,
    kyc_tier: KycTierSetter,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient,
) -> TraderFactory:
    async def make(cash: int = 1_000_000, open_account: bool = True) -> Trader:
        user = await user_factory()
        await kyc_tier(user.id, "standard")
        await approve_kyc(sessionmaker, settings, user.id)
        if cash:
            await fund(sessionmaker, user.id, cash)
        trader = Trader(user=user, http=http)
        if open_account:
            r = await http.post("/api/v1/trading/account", headers=user.headers)
            assert r.status_code == 201, r.text
        return trader

    return make


@pytest.fixture
async def market_open(http: httpx.AsyncClient, user_factory: UserFactory) -> None:
    """Pin the sandbox's equity market open (tests must not depend on the wall clock)."""
    user = await user_factory()
    r = await http.put(
        "/api/v1/trading/sandbox/clock", json={"market": "open"}, headers=user.headers
    )
    assert r.status_code == 200, r.text


@pytest.fixture
def sandbox(sessionmaker: async_sessionmaker[AsyncSession]) -> SandboxBroker:
    return SandboxBroker(sessionmaker, poll_seconds=0.01)


Drain = Callable[[], Awaitable[int]]


@pytest.fixture
def drain(sessionmaker: async_sessionmaker[AsyncSession], sandbox: SandboxBroker) -> Drain:
    """Apply every trade event the sandbox has emitted so far (what `pull worker` does)."""

    async def run() -> int:
        return await asyncio.wait_for(
            consume(maker=sessionmaker, broker=sandbox, stop=asyncio.Event(), drain=True), 30
        )

    return run
