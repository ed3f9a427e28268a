"""Deposits end to end on the real Temporal dev server and the Plaid sandbox: the API starts
DepositWorkflow through the outbox, the sandbox moves the transfer and delivers signed
webhooks to the API, which signals the workflow."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from pull.funding.providers import sandbox
from pull.kit.runtime import worker_runtime
from tests.conftest import TestUser
from tests.funding.conftest import FundingEnvFactory

MakeUser = Callable[..., Awaitable[TestUser]]


async def test_deposit_happy_path_with_idempotency_and_history(
    funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    env = await funding_env()
    user = await funded_user("basic")
    bank = await env.link_bank(user)
    pubsub = worker_runtime().redis.pubsub()
    await pubsub.subscribe("events:funding.deposit_settled")
    async with env.worker():
        key = str(uuid.uuid4())
        first = await env.deposit(user, bank, 12_345, key=key)
        assert first["status"] == "created" and first["amount"] == 12_345
        again = await env.http.post(
            "/api/v1/funding/deposits",
            json={"amount": 12_345, "bank_account_id": bank},
            headers={**user.headers, "Idempotency-Key": key},
        )
        assert again.status_code == 201 and again.json() == first
        assert again.headers["Idempotent-Replayed"] == "true"
        other = await env.http.post(
            "/api/v1/funding/deposits",
            json={"amount": 1, "bank_account_id": bank},
            headers={**user.headers, "Idempotency-Key": key},
        )
        assert other.status_code == 409
        assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
        missing = await env.http.post(
            "/api/v1/funding/deposits",
            json={"amount": 1, "bank_account_id": bank},
            headers=user.headers,
        )
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == "IDEMPOTENCY_KEY_REQUIRED"

        done = await env.wait_status(user, "deposits", first["id"], "settled")
    assert [h["status"] for h in done["history"]] == ["created", "pending", "posted", "settled"]
    assert await env.balance(user) == {
        "available": 12_345,
        "held": 0,
        "pending_deposits": 0,
        "withdrawable": 12_345,
        "total": 12_345,
    }
    assert await env.transfers(f"deposit:{first['id']}") == [
        f"deposit:{first['id']}:initiated",
        f"deposit:{first['id']}:settled",
    ]
    await env.assert_books()
    r = await env.http.get("/api/v1/funding/deposits", headers=user.headers)
    assert [d["id"] for d in r.json()["items"]] == [first["id"]]
    async with env.maker() as s:
        topics = [
            row[0] for row in await s.execute(text("SELECT topic FROM outbox_events ORDER BY id"))
        ]
    assert "funding.deposit_settled" in topics
    published = None
    for _ in range(50):
        published = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if published:
            break
    await pubsub.aclose()
    assert published is not None
    assert json.loads(published["data"]) == {
        "deposit_id": first["id"],
        "user_id": str(user.id),
        "amount": 12_345,
    }


async def test_instant_credit_is_spendable_but_not_withdrawable_until_settled(
    funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    env = await funding_env(PLAID_SANDBOX_SETTLE_SECONDS=3600)
    user = await funded_user("standard")  # $250 of instant credit
    bank = await env.link_bank(user)
    async with env.worker():
        deposit = await env.deposit(user, bank, 40_000)
        await env.wait_status(user, "deposits", deposit["id"], "posted")
        assert await env.balance(user) == {
            "available": 25_000,
            "held": 0,
            "pending_deposits": 15_000,
            "withdrawable": 0,
            "total": 40_000,
        }
        r = await env.withdraw(user, bank, 1_000)
        assert r.status_code == 409 and r.json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    await env.assert_books()


async def test_failed_and_declined_deposits_move_nothing(
    funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    env = await funding_env()
    user = await funded_user("basic")
    bank = await env.link_bank(user)
    async with env.worker():
        failed = await env.deposit(user, bank, sandbox.FAILED)
        declined = await env.deposit(user, bank, sandbox.DECLINED)
        body = await env.wait_status(user, "deposits", failed["id"], "failed")
        assert body["failure_reason"] and "R01" in body["failure_reason"]
        body = await env.wait_status(user, "deposits", declined["id"], "failed")
        assert "declined" in (body["failure_reason"] or "")
    assert (await env.balance(user))["total"] == 0
    assert await env.transfers(f"deposit:{declined['id']}") == []
    await env.assert_books()


async def test_return_after_settlement_takes_the_money_back_and_restricts_on_shortfall(
    funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    env = await funding_env(PLAID_SANDBOX_RETURN_SECONDS=1.5)
    user = await funded_user("basic")
    bank = await env.link_bank(user)
    async with env.worker():
        deposit = await env.deposit(user, bank, sandbox.RETURNED_AFTER_SETTLEMENT)
        await env.wait_status(user, "deposits", deposit["id"], "settled")
        # Spend most of it before the return arrives (a trade, say).
        from pull.ledger.service import Leg, system_account, transfer, user_account

        async with env.maker() as s, s.begin():
            await transfer(
                session=s,
                idempotency_key="spend",
                kind="trade",
                legs=[
                    Leg(user_account(user.id, "cash"), -700),
                    Leg(system_account("market_escrow"), 700),
                ],
            )
        body = await env.wait_status(user, "deposits", deposit["id"], "returned")
    assert [h["status"] for h in body["history"]][-2:] == ["settled", "returned"]
    assert (await env.balance(user))["total"] == 0
    async with env.maker() as s:
        recovery = await s.scalar(
            text(
                "SELECT sum(balance) FROM ledger_accounts "
                "WHERE owner_id IS NULL AND kind = 'negative_balance_recovery:' || CAST(:u AS text)"
            ),
            {"u": str(user.id)},
        )
        status = await s.scalar(text("SELECT status FROM users WHERE id = :u"), {"u": user.id})
    assert recovery == -700  # the shortfall, never silently lost
    assert status == "restricted"
    # Restricted: no withdrawal; a deposit is allowed, it is how the debt is repaid.
    r = await env.withdraw(user, bank, 100, key="after-restriction")
    assert r.status_code == 403 and r.json()["error"]["code"] == "ACCOUNT_RESTRICTED"
    r = await env.http.post(
        "/api/v1/funding/deposits",
        json={"amount": 100, "bank_account_id": bank},
        headers={**user.headers, "Idempotency-Key": "after-restriction"},
    )
    assert r.status_code == 201, r.text
    env.workflow_ids.append(f"deposit-{r.json()['id']}")
    await env.assert_books()
