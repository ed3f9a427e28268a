"""The Plaid webhook: Plaid's verification scheme, and duplicated or out-of-order events that
change nothing twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from pull.funding.activities import deliver_webhook
from pull.funding.providers import signing
from pull.funding.providers.sandbox import PlaidSandbox
from pull.kit.runtime import worker_runtime
from tests.conftest import TestUser
from tests.funding.conftest import FundingEnv, FundingEnvFactory

MakeUser = Callable[..., Awaitable[TestUser]]
MANUAL = {"PLAID_SANDBOX_POST_SECONDS": 3600}  # the sandbox sends `pending`, the test the rest


def _sandbox(env: FundingEnv) -> PlaidSandbox:
    return PlaidSandbox(worker_runtime().redis, key_seed=env.settings.plaid_sandbox_key_seed)


async def _transfer_id(env: FundingEnv, deposit_id: str) -> str:
    async with env.maker() as s:
        value = await s.scalar(
            text("SELECT plaid_transfer_id FROM deposits WHERE id = :d"), {"d": deposit_id}
        )
    assert value
    return str(value)


async def _count(env: FundingEnv, sql: str) -> int:
    async with env.maker() as s:
        return int(await s.scalar(text(sql)) or 0)


async def test_bad_signatures_are_refused_and_change_nothing(
    funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    env = await funding_env(**MANUAL)
    user = await funded_user("basic")
    bank = await env.link_bank(user)
    async with env.worker():
        deposit = await env.deposit(user, bank, 5_000)
        await env.wait_status(user, "deposits", deposit["id"], "pending")
    sandbox = _sandbox(env)
    await sandbox.append_event(
        transfer_id=await _transfer_id(env, deposit["id"]), event_type="settled"
    )
    before = await _count(env, "SELECT count(*) FROM plaid_transfer_events")
    body = signing.webhook_body()
    other = signing.sandbox_private_key("someone else")
    cases = {
        "no header": {},
        "garbage": {signing.HEADER: "not-a-jwt"},
        "body changed": {signing.HEADER: sandbox.sign_webhook(body + b" ")},
        "too old": {signing.HEADER: sandbox.sign_webhook(body, iat=int(time.time()) - 301)},
        "unknown key": {signing.HEADER: signing.sign(other, body)},
    }
    for name, headers in cases.items():
        r = await env.http.post(
            "/webhooks/plaid", content=body, headers={"Content-Type": "application/json", **headers}
        )
        assert r.status_code == 401, name
        assert r.json()["error"]["code"] == "INVALID_WEBHOOK_SIGNATURE", name
    assert await _count(env, "SELECT count(*) FROM plaid_transfer_events") == before
    assert (await env.get(user, "deposits", deposit["id"]))["status"] == "pending"
    # The same body, properly signed, is taken.
    r = await env.http.post(
        "/webhooks/plaid",
        content=body,
        headers={"Content-Type": "application/json", signing.HEADER: sandbox.sign_webhook(body)},
    )
    assert r.status_code == 200 and r.json() == {"received": 1}


async def test_duplicated_and_out_of_order_webhooks_move_money_once(
    funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    env = await funding_env(**MANUAL)
    user = await funded_user("basic")
    bank = await env.link_bank(user)
    sandbox = _sandbox(env)
    async with env.worker():
        deposit = await env.deposit(user, bank, 5_000)
        await env.wait_status(user, "deposits", deposit["id"], "pending")
        transfer_id = await _transfer_id(env, deposit["id"])
        settled_id = await sandbox.append_event(transfer_id=transfer_id, event_type="settled")
        # Delivered three times at once, then the late `posted` twice.
        await asyncio.gather(
            *(deliver_webhook(sandbox, env.settings.plaid_webhook_url) for _ in range(3))
        )
        await sandbox.append_event(transfer_id=transfer_id, event_type="posted")
        await deliver_webhook(sandbox, env.settings.plaid_webhook_url)
        await deliver_webhook(sandbox, env.settings.plaid_webhook_url)
        body = await env.wait_status(user, "deposits", deposit["id"], "settled")
        # A signal repeated by hand (same event id) and a stale event are ignored too.
        handle = env.temporal.get_workflow_handle(f"deposit-{deposit['id']}")
        await handle.signal("transfer_event", {"event_id": settled_id, "event_type": "settled"})
        await handle.signal("transfer_event", {"event_id": 10**6, "event_type": "posted"})
        await asyncio.sleep(1.0)
        assert await handle.query("status") == "settled"
    assert [h["status"] for h in body["history"]] == ["created", "pending", "settled"]
    assert await env.transfers(f"deposit:{deposit['id']}") == [
        f"deposit:{deposit['id']}:initiated",
        f"deposit:{deposit['id']}:settled",
    ]
    assert (await env.balance(user))["available"] == 5_000
    assert await _count(env, "SELECT count(*) FROM plaid_transfer_events") == 3
    await env.assert_books()
