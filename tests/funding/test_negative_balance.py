"""Negative balances (docs/money.md, "Negative balances"): held order collateral is freed
before a loss is booked, later credits repay the debt and lift the restriction it caused, and
operators restrict and unrestrict accounts (admin endpoints, `pull users`), audited."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.exchange import service as exchange
from pull.exchange.schemas import OrderCreate
from pull.funding import deposits, service
from pull.funding.events import with_recovery
from pull.funding.providers.sandbox import PlaidSandbox
from pull.funding.recovery import owed, recovery_account
from pull.identity import service as identity
from pull.kit.crypto import FieldCipher
from pull.kit.outbox import OutboxEvent
from pull.ledger.service import (
    Leg,
    account_balance,
    get_balance,
    system_account,
    transfer,
    trial_balance,
    user_account,
)
from tests.conftest import REPO, Services, TestUser, UserFactory
from tests.exchange.conftest import create_market

Maker = async_sessionmaker[AsyncSession]


class Bank:
    """A user's sandbox bank and deposits driven through the funding service."""

    def __init__(self, maker: Maker, settings: Settings, redis: Redis, user: TestUser) -> None:
        self.maker, self.settings, self.user = maker, settings, user
        self.plaid = PlaidSandbox(redis, key_seed=settings.plaid_sandbox_key_seed)
        self.cipher = FieldCipher(settings.field_encryption_keys)
        self.redis = redis
        self.id: uuid.UUID | None = None

    async def link(self) -> None:
        link = await self.plaid.sandbox_public_token(
            username="user_good", password="pass_good", institution_id="ins_109508"
        )
        async with self.maker() as s, s.begin():
            bank = await service.link_bank_account(
                session=s,
                provider=self.plaid,
                cipher=self.cipher,
                user_id=self.user.id,
                public_token=link.public_token,
                account_id=link.accounts[0].account_id,
            )
        self.id = bank.id

    async def deposit(self, amount: int, *events: str) -> uuid.UUID:
        assert self.id is not None
        async with self.maker() as s, s.begin():
            made = await deposits.create_deposit(
                session=s,
                settings=self.settings,
                user_id=self.user.id,
                bank_account_id=self.id,
                amount=amount,
            )
        async with self.maker() as s, s.begin():
            await deposits.start_deposit(
                session=s, provider=self.plaid, cipher=self.cipher, deposit_id=made.id
            )
        for event in events:
            await self.event(made.id, event)
        return made.id

    async def event(self, deposit_id: uuid.UUID, event: str) -> None:
        async with self.maker() as s, s.begin():
            await deposits.apply_deposit_event(
                session=s, deposit_id=deposit_id, event_type=event, failure_reason=None
            )


async def _status(maker: Maker, user_id: uuid.UUID) -> tuple[str, int, int]:
    async with maker() as s:
        user = await identity.get_user(session=s, user_id=user_id)
        assert user is not None
        b = await get_balance(session=s, user_id=user_id)
        return user.status, await owed(session=s, user_id=user_id), b.available


async def test_collateral_counts_then_later_credits_repay_and_lift_the_restriction(
    sessionmaker: Maker,
    settings: Settings,
    redis: Redis,
    user_factory: UserFactory,
    kyc_tier: Callable[[uuid.UUID, str], Awaitable[None]],
) -> None:
    user = await user_factory()
    await kyc_tier(user.id, "basic")  # no instant credit: every credit is settled money
    bank = Bank(sessionmaker, settings, redis, user)
    await bank.link()
    first = await bank.deposit(10_000, "posted", "settled")
    ticker = await create_market(sessionmaker, taker_fee_bps=0)
    async with sessionmaker() as s, s.begin():
        order = await exchange.create_order(
            session=s,
            user_id=user.id,
            data=OrderCreate(ticker=ticker, side="yes", action="buy", count=20, yes_price=50),
        )
        await transfer(
            session=s,
            idempotency_key=f"spend:{user.id}",
            kind="test.spend",
            legs=[Leg(user_account(user.id, "cash"), -8_500), Leg(system_account("spent"), 8_500)],
        )
    assert order.status == "resting"
    assert await _status(sessionmaker, user.id) == ("active", 0, 500)

    # The first deposit comes back (R01) after its money was spent and 1 000 rests as order
    # collateral: the order is canceled and its collateral taken before the loss is booked.
    await bank.event(first, "returned")
    async with sessionmaker() as s:
        canceled = await exchange.get_order(session=s, user_id=user.id, order_id=order.order_id)
        reason = (await identity.audit_entries(session=s))[0]["details"]["reason"]
    assert canceled.status == "canceled"
    assert await _status(sessionmaker, user.id) == ("restricted", 8_500, 0)
    assert reason.startswith("negative balance: deposit")

    # Later credits repay it, oldest debt first; the restriction lifts when nothing is owed.
    await bank.deposit(5_000, "posted", "settled")
    assert await _status(sessionmaker, user.id) == ("restricted", 3_500, 0)
    await bank.deposit(4_000, "posted", "settled")
    assert await _status(sessionmaker, user.id) == ("active", 0, 500)
    async with sessionmaker() as s:
        assert await account_balance(session=s, account=recovery_account(user.id)) == 0
        assert (await trial_balance(session=s)).balanced
        entries = await identity.audit_entries(session=s)
    assert entries[0]["details"]["to"] == "active"
    assert entries[0]["details"]["reason"].startswith("negative balance repaid")


async def test_a_settlement_payout_repays_and_an_operator_restriction_stays(
    sessionmaker: Maker,
    settings: Settings,
    redis: Redis,
    user_factory: UserFactory,
    kyc_tier: Callable[[uuid.UUID, str], Awaitable[None]],
    worker_runtime: object,
) -> None:
    user = await user_factory()
    await kyc_tier(user.id, "basic")
    async with sessionmaker() as s, s.begin():
        await transfer(
            session=s,
            idempotency_key=f"owed:{user.id}",
            kind="deposit_returned",
            legs=[Leg(recovery_account(user.id), -700), Leg(system_account("bank_clearing"), 700)],
        )
        await identity.set_status(
            session=s, user_id=user.id, status="restricted", reason="operator: fraud review"
        )
        await transfer(
            session=s,
            idempotency_key=f"payout:{user.id}",
            kind="exchange.settlement",
            legs=[
                Leg(system_account("market_escrow:tpay"), -1_000),
                Leg(user_account(user.id, "cash"), 1_000),
            ],
        )
    delivered: list[int] = []

    async def publish(event: OutboxEvent) -> None:
        delivered.append(event.id)

    handler = with_recovery({"exchange.settlement": publish})["exchange.settlement"]
    event = OutboxEvent(
        id=1,
        topic="exchange.settlement",
        key="TPAY",
        payload={"ticker": "TPAY", "settlements": [{"user_id": str(user.id), "revenue": 1_000}]},
    )
    await handler(event)
    await handler(event)  # a redelivery repays nothing twice
    assert delivered == [1, 1]
    # Repaid from the payout; the operator's restriction (another reason) is not lifted.
    assert await _status(sessionmaker, user.id) == ("restricted", 0, 300)


def pull(services: Services, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pull.cli", *args],
        env=services.env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_operators_restrict_and_unrestrict_audited(
    client: httpx.AsyncClient,
    services: Services,
    sessionmaker: Maker,
    user_factory: UserFactory,
) -> None:
    user = await user_factory()
    admin = await user_factory(admin=True)
    url = f"/api/admin/users/{user.id}"
    r = await client.post(f"{url}/restrict", json={"reason": "x"}, headers=user.headers)
    assert r.status_code == 403
    r = await client.post(f"{url}/restrict", json={}, headers=admin.headers)
    assert r.status_code == 422
    r = await client.post(f"{url}/restrict", json={"reason": "chargeback"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "user_id": str(user.id),
        "status": "restricted",
        "reason": "chargeback",
        "owed": 0,
    }
    r = await client.post(f"{url}/restrict", json={"reason": "again"}, headers=admin.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "INVALID_STATE"
    # Restricted without a debt: no deposit (one that owes may deposit to repay).
    r = await client.post(
        "/api/v1/funding/deposits",
        json={"amount": 100, "bank_account_id": str(uuid.uuid4())},
        headers={**user.headers, "Idempotency-Key": "k1"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "ACCOUNT_RESTRICTED"
    r = await client.post(f"{url}/unrestrict", json={"reason": "cleared"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "active"
    r = await client.post(
        f"/api/admin/users/{uuid.uuid4()}/unrestrict", json={"reason": "x"}, headers=admin.headers
    )
    assert r.status_code == 404

    done = pull(services, "users", "restrict", user.email, "--reason", "ops ticket 12")
    assert done.returncode == 0, done.stderr
    assert f"{user.email} is now restricted" in done.stdout
    done = pull(services, "users", "unrestrict", user.email, "--reason", "ticket closed")
    assert done.returncode == 0 and "is now active" in done.stdout
    done = pull(services, "users", "unrestrict", user.email, "--reason", "twice")
    assert done.returncode == 1 and "INVALID_STATE" in done.stderr
    done = pull(services, "users", "restrict", "nobody@example.com", "--reason", "x")
    assert done.returncode == 1 and "USER_NOT_FOUND" in done.stderr

    async with sessionmaker() as s:
        entries: list[dict[str, Any]] = list(await identity.audit_entries(session=s, limit=20))
    changes = [
        (e["actor_id"], e["details"]["to"], e["details"]["reason"])
        for e in reversed(entries)
        if e["action"] == "user.status" and e["resource"] == f"user:{user.id}"
    ]
    assert changes == [
        (admin.id, "restricted", "chargeback"),
        (admin.id, "active", "cleared"),
        (None, "restricted", "ops ticket 12 (pull users restrict)"),
        (None, "active", "ticket closed (pull users unrestrict)"),
    ]
