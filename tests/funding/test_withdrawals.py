"""Withdrawals end to end: the hold, fees, settlement, failure, and admin approval."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import text

from pull.funding.providers import sandbox
from tests.conftest import TestUser, UserFactory
from tests.funding.conftest import FundingEnv, FundingEnvFactory

MakeUser = Callable[..., Awaitable[TestUser]]


async def _funded(env: FundingEnv, user: TestUser, bank: str, amount: int) -> None:
    deposit = await env.deposit(user, bank, amount)
    await env.wait_status(user, "deposits", deposit["id"], "settled")


async def _system(env: FundingEnv, name: str) -> int:
    async with env.maker() as s:
        value = await s.scalar(
            text(
                "SELECT COALESCE(sum(balance), 0) FROM ledger_accounts "
                "WHERE owner_id IS NULL AND kind = :k"
            ),
            {"k": name},
        )
    return int(value or 0)


async def test_standard_withdrawal_holds_then_completes_with_the_fee(
    funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    env = await funding_env(PLAID_SANDBOX_SETTLE_SECONDS=1.0)
    user = await funded_user("standard")
    bank = await env.link_bank(user)
    async with env.worker():
        await _funded(env, user, bank, 50_000)
        r = await env.withdraw(user, bank, 20_000)
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["fee"], body["net_amount"], body["status"]) == (50, 19_950, "approved")
        held = await env.balance(user)
        assert (held["available"], held["held"], held["total"]) == (30_000, 20_000, 50_000)
        # More than what is left to withdraw is refused, nothing held.
        r2 = await env.withdraw(user, bank, 30_001)
        assert r2.status_code == 409 and r2.json()["error"]["code"] == "INSUFFICIENT_FUNDS"
        done = await env.wait_status(user, "withdrawals", body["id"], "completed")
    assert [h["status"] for h in done["history"]] == [
        "approved",
        "processing",
        "posted",
        "completed",
    ]
    assert await env.balance(user) == {
        "available": 30_000,
        "held": 0,
        "pending_deposits": 0,
        "withdrawable": 30_000,
        "total": 30_000,
    }
    assert await _system(env, "fee_revenue") == 50
    await env.assert_books()


async def test_instant_fee_and_failed_withdrawal_releases_the_hold(
    funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    env = await funding_env()
    user = await funded_user("basic")
    bank = await env.link_bank(user)
    async with env.worker():
        await _funded(env, user, bank, 10_000)
        # $6.66 net is the sandbox's failure amount: gross 716 - instant fee 50 = 666.
        r = await env.withdraw(user, bank, sandbox.FAILED + 50, speed="instant")
        assert r.status_code == 201, r.text
        assert r.json()["fee"] == 50
        body = await env.wait_status(user, "withdrawals", r.json()["id"], "failed")
        assert body["failure_reason"]
    assert (await env.balance(user))["available"] == 10_000
    assert await _system(env, "fee_revenue") == 0
    await env.assert_books()


async def test_large_withdrawals_wait_for_an_admin(
    funding_env: FundingEnvFactory, funded_user: MakeUser, user_factory: UserFactory
) -> None:
    env = await funding_env(WITHDRAWAL_APPROVAL_THRESHOLD_CENTS=5_000)
    user = await funded_user("basic")
    admin = await user_factory(admin=True)
    bank = await env.link_bank(user)
    async with env.worker():
        await _funded(env, user, bank, 30_000)
        first = (await env.withdraw(user, bank, 10_000)).json()
        second = (await env.withdraw(user, bank, 10_000)).json()
        assert first["status"] == second["status"] == "pending_approval"
        r = await env.http.get("/api/admin/withdrawals", headers=admin.headers)
        assert {w["id"] for w in r.json()["items"]} == {first["id"], second["id"]}
        r = await env.http.post(
            f"/api/admin/withdrawals/{first['id']}/approve", headers=user.headers
        )
        assert r.status_code == 403
        r = await env.http.post(
            f"/api/admin/withdrawals/{first['id']}/approve", headers=admin.headers
        )
        assert r.status_code == 200 and r.json()["status"] == "approved"
        r = await env.http.post(
            f"/api/admin/withdrawals/{second['id']}/reject",
            json={"reason": "unusual activity"},
            headers=admin.headers,
        )
        assert r.status_code == 200 and r.json()["status"] == "rejected"
        r = await env.http.post(
            f"/api/admin/withdrawals/{second['id']}/approve", headers=admin.headers
        )
        assert r.status_code == 409
        await env.wait_status(user, "withdrawals", first["id"], "completed")
    b = await env.balance(user)
    assert (b["available"], b["held"], b["total"]) == (20_000, 0, 20_000)
    await env.assert_books()


async def test_without_kyc_no_money_moves(
    funding_env: FundingEnvFactory, user_factory: UserFactory
) -> None:
    env = await funding_env()
    user = await user_factory()
    bank = await env.link_bank(user)
    r = await env.http.post(
        "/api/v1/funding/deposits",
        json={"amount": 100, "bank_account_id": bank},
        headers={**user.headers, "Idempotency-Key": "k"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "KYC_REQUIRED"
    r = await env.withdraw(user, bank, 100)
    assert r.status_code == 403
    async with env.maker() as s:
        assert await s.scalar(text("SELECT count(*) FROM deposits")) == 0
        assert await s.scalar(text("SELECT count(*) FROM idempotency_keys")) == 0
