"""Unlinking a bank account: money never moves to or from it afterwards (409
BANK_ACCOUNT_UNLINKED, and a withdrawal created before the unlink fails unsent), Plaid's
/item/remove revokes the item, and a link that fails after the token exchange leaves no item."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import text

from pull import devstack
from pull.kit.crypto import FieldCipher
from pull.kit.runtime import worker_runtime
from pull.ledger.service import Leg, system_account, transfer, user_account
from tests.conftest import TestUser
from tests.funding.conftest import FundingEnv, FundingEnvFactory, serve
from tests.funding.fake_plaid import CLIENT_ID, SECRET, FakePlaid

MakeUser = Callable[..., Awaitable[TestUser]]


@pytest.fixture
async def fake_plaid() -> AsyncIterator[tuple[FakePlaid, str]]:
    fake = FakePlaid()
    async with serve(fake.app(), devstack.free_port()) as url:  # type: ignore[arg-type]
        yield fake, url


async def _fund(env: FundingEnv, user: TestUser, cents: int) -> None:
    async with env.maker() as s, s.begin():
        await transfer(
            session=s,
            idempotency_key=f"fund:{user.id}",
            kind="deposit",
            legs=[
                Leg(system_account("bank_clearing"), -cents),
                Leg(user_account(user.id, "cash"), cents),
            ],
        )


async def _access_token(env: FundingEnv, bank: str) -> str:
    async with env.maker() as s:
        stored = await s.scalar(
            text("SELECT access_token_enc FROM bank_accounts WHERE id = :b"), {"b": bank}
        )
    return FieldCipher(env.settings.field_encryption_keys).decrypt(str(stored))


async def test_a_withdrawal_to_an_unlinked_account_is_refused(
    funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    env = await funding_env()
    user = await funded_user("standard")
    bank = await env.link_bank(user)
    token = await _access_token(env, bank)
    assert await worker_runtime().redis.exists(f"plaid:sandbox:item:{token}")
    await _fund(env, user, 10_000)
    # Created while no worker runs: approved, held, not yet sent to Plaid.
    r = await env.withdraw(user, bank, 4_000)
    assert r.status_code == 201 and r.json()["status"] == "approved", r.text
    withdrawal = r.json()["id"]
    r = await env.http.delete(f"/api/v1/funding/bank-accounts/{bank}", headers=user.headers)
    assert r.status_code == 204
    # The sandbox item is removed (/item/remove): its access token no longer works.
    assert not await worker_runtime().redis.exists(f"plaid:sandbox:item:{token}")
    r = await env.withdraw(user, bank, 1_000)
    assert r.status_code == 409 and r.json()["error"]["code"] == "BANK_ACCOUNT_UNLINKED"
    async with env.worker():
        done = await env.wait_status(user, "withdrawals", withdrawal, "failed", "processing")
    assert done["status"] == "failed", done
    assert (done["failure_reason"] or "").startswith("BANK_ACCOUNT_UNLINKED")
    assert await env.balance(user) == {
        "available": 10_000,
        "held": 0,
        "pending_deposits": 0,
        "withdrawable": 10_000,
        "total": 10_000,
    }
    await env.assert_books()


async def test_unlink_and_a_failed_link_remove_the_plaid_item(
    fake_plaid: tuple[FakePlaid, str], funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    fake, url = fake_plaid
    env = await funding_env(PLAID_CLIENT_ID=CLIENT_ID, PLAID_SECRET=SECRET, PLAID_BASE_URL=url)
    user = await funded_user("basic")

    # A link naming an account the item does not have fails, and the item is removed.
    r = await env.http.post("/api/v1/funding/sandbox/public-token", json={}, headers=user.headers)
    public = r.json()["public_token"]
    r = await env.http.post(
        "/api/v1/funding/bank-accounts",
        json={"public_token": public, "account_id": "acc-not-there"},
        headers=user.headers,
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "UNKNOWN_ACCOUNT"
    assert fake.items == {}
    assert [p for p, _, _ in fake.requests][-1] == "/item/remove"

    r = await env.http.post("/api/v1/funding/sandbox/public-token", json={}, headers=user.headers)
    public = r.json()["public_token"]
    item = fake.public_tokens[public]
    r = await env.http.post(
        "/api/v1/funding/bank-accounts",
        json={"public_token": public, "account_id": f"acc-{item}"},
        headers=user.headers,
    )
    assert r.status_code == 201, r.text
    bank = r.json()["id"]
    assert item in fake.items.values()
    r = await env.http.delete(f"/api/v1/funding/bank-accounts/{bank}", headers=user.headers)
    assert r.status_code == 204
    path, _, _ = fake.requests[-1]
    assert path == "/item/remove"
    assert item not in fake.items.values()
    r = await env.http.delete(f"/api/v1/funding/bank-accounts/{bank}", headers=user.headers)
    assert r.status_code == 404
