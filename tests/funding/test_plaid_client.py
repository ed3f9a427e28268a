"""The real Plaid client (official plaid-python SDK) against a local fake speaking Plaid's JSON,
alone and driving a whole deposit through the workflow and the webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import text

from pull import devstack
from pull.funding.providers.base import PlaidError
from pull.funding.providers.plaid import PlaidClient
from pull.ledger.service import Leg, system_account, transfer, user_account
from tests.conftest import TestUser
from tests.funding.conftest import FundingEnvFactory, serve
from tests.funding.fake_plaid import CLIENT_ID, SECRET, FakePlaid

MakeUser = Callable[..., Awaitable[TestUser]]


@pytest.fixture
async def fake_plaid() -> AsyncIterator[tuple[FakePlaid, str]]:
    fake = FakePlaid()
    async with serve(fake.app(), devstack.free_port()) as url:  # type: ignore[arg-type]
        yield fake, url


async def test_client_calls_speak_plaids_wire_format(fake_plaid: tuple[FakePlaid, str]) -> None:
    fake, url = fake_plaid
    client = PlaidClient(client_id=CLIENT_ID, secret=SECRET, environment="sandbox", base_url=url)
    link = await client.create_link_token(
        user_id="u-1", webhook_url="https://x.example/webhooks/plaid"
    )
    assert link.link_token.startswith("link-sandbox-")
    path, body, headers = fake.requests[-1]
    assert path == "/link/token/create"
    assert body["user"] == {"client_user_id": "u-1"} and body["products"] == ["transfer"]
    assert headers["plaid-client-id"] == CLIENT_ID and headers["plaid-secret"] == SECRET

    linked = await client.sandbox_public_token(
        username="user_good", password="pass_good", institution_id="ins_109508"
    )
    assert [p for p, _, _ in fake.requests[-4:]] == [
        "/sandbox/public_token/create",
        "/item/public_token/exchange",
        "/accounts/get",
        "/item/public_token/create",
    ]
    assert [(a.account_id, a.mask) for a in linked.accounts] == [
        (f"acc-{fake.public_tokens[linked.public_token]}", "0000")
    ]
    assert linked.institution_name == "First Platypus Bank"
    item = await client.exchange_public_token(public_token=linked.public_token)
    accounts = await client.get_accounts(access_token=item.access_token)
    assert [(a.account_id, a.mask, a.institution_name) for a in accounts] == [
        (f"acc-{item.item_id}", "0000", "First Platypus Bank")
    ]
    auth = await client.authorize_transfer(
        access_token=item.access_token,
        account_id=accounts[0].account_id,
        type="debit",
        amount_cents=12_345,
        network="ach",
        legal_name="Ada Lovelace",
        idempotency_key="deposit-1",
    )
    _, body, _ = fake.requests[-1]
    assert body["amount"] == "123.45" and body["type"] == "debit" and body["ach_class"] == "web"
    assert body["user"] == {"legal_name": "Ada Lovelace"} and auth.decision == "approved"
    transfer = await client.create_transfer(
        access_token=item.access_token,
        account_id=accounts[0].account_id,
        authorization_id=auth.id,
        amount_cents=12_345,
        description="PULL deposit",
        idempotency_key="deposit-1",
    )
    fake.emit(transfer.id, "pending")
    fake.emit(transfer.id, "posted")
    page = await client.sync_transfer_events(after_id=0, count=1)
    assert [(e.event_id, e.event_type) for e in page.events] == [(1, "pending")] and page.has_more
    page = await client.sync_transfer_events(after_id=1)
    assert [(e.event_id, e.transfer_id) for e in page.events] == [(2, transfer.id)]
    assert not page.has_more
    jwk = await client.webhook_verification_key(key_id=fake.jwk["kid"])
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256"

    with pytest.raises(PlaidError) as err:
        await client.exchange_public_token(public_token="public-sandbox-nope")
    assert err.value.status_code == 400
    assert err.value.details["error_code"] == "INVALID_PUBLIC_TOKEN"
    bad = PlaidClient(client_id="x", secret="y", base_url=url)
    with pytest.raises(PlaidError) as err:
        await bad.create_link_token(user_id="u", webhook_url="https://x.example")
    assert err.value.details["error_code"] == "INVALID_API_KEYS"
    unreachable = PlaidClient(
        client_id="x", secret="y", base_url=f"http://127.0.0.1:{devstack.free_port()}"
    )
    with pytest.raises(PlaidError) as err:
        await unreachable.create_link_token(user_id="u", webhook_url="https://x.example")
    assert err.value.status_code == 502


async def test_a_deposit_through_the_real_client(
    fake_plaid: tuple[FakePlaid, str], funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    fake, url = fake_plaid
    env = await funding_env(PLAID_CLIENT_ID=CLIENT_ID, PLAID_SECRET=SECRET, PLAID_BASE_URL=url)
    user = await funded_user("basic")
    r = await env.http.post("/api/v1/funding/sandbox/public-token", json={}, headers=user.headers)
    assert r.status_code == 200, r.text
    public = r.json()["public_token"]
    (account,) = r.json()["accounts"]
    assert account["account_id"] == f"acc-{fake.public_tokens[public]}"
    r = await env.http.post(
        "/api/v1/funding/bank-accounts",
        json={"public_token": public, "account_id": account["account_id"]},
        headers=user.headers,
    )
    assert r.status_code == 201, r.text
    bank = r.json()["id"]
    async with env.worker():
        deposit = await env.deposit(user, bank, 2_500)
        await env.wait_status(user, "deposits", deposit["id"], "pending")
        (transfer_id,) = fake.transfers
        for event in ("pending", "posted", "settled"):
            fake.emit(transfer_id, event)
        body, headers = fake.webhook()
        r = await env.http.post("/webhooks/plaid", content=body, headers=headers)
        assert r.status_code == 200 and r.json() == {"received": 3}
        done = await env.wait_status(user, "deposits", deposit["id"], "settled")
    assert [h["status"] for h in done["history"]] == ["created", "pending", "posted", "settled"]
    assert (await env.balance(user))["available"] == 2_500
    await env.assert_books()


async def test_a_refusal_from_plaid_fails_the_transfer_and_releases_everything(
    fake_plaid: tuple[FakePlaid, str], funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    fake, url = fake_plaid
    env = await funding_env(PLAID_CLIENT_ID=CLIENT_ID, PLAID_SECRET=SECRET, PLAID_BASE_URL=url)
    user = await funded_user("basic")
    r = await env.http.post("/api/v1/funding/sandbox/public-token", json={}, headers=user.headers)
    public = r.json()["public_token"]
    (account,) = r.json()["accounts"]
    assert account["account_id"] == f"acc-{fake.public_tokens[public]}"
    r = await env.http.post(
        "/api/v1/funding/bank-accounts",
        json={"public_token": public, "account_id": account["account_id"]},
        headers=user.headers,
    )
    bank = r.json()["id"]
    async with env.maker() as s, s.begin():
        await transfer(
            session=s,
            idempotency_key="fund",
            kind="deposit",
            legs=[
                Leg(system_account("bank_clearing"), -5_000),
                Leg(user_account(user.id, "cash"), 5_000),
            ],
        )
    fake.refuse_transfers = True
    async with env.worker():
        deposit = await env.deposit(user, bank, 2_500)
        r = await env.withdraw(user, bank, 3_000)
        assert r.status_code == 201, r.text
        body = await env.wait_status(user, "deposits", deposit["id"], "failed")
        assert "TRANSFER_ACCOUNT_BLOCKED" in (body["failure_reason"] or "")
        body = await env.wait_status(user, "withdrawals", r.json()["id"], "failed")
    assert await env.balance(user) == {
        "available": 5_000,
        "held": 0,
        "pending_deposits": 0,
        "withdrawable": 5_000,
        "total": 5_000,
    }
    async with env.maker() as s:
        used = await s.scalar(
            text("SELECT sum(amount_cents - released_cents) FROM kyc_limit_usage")
        )
    assert used == 0  # both limits released
    await env.assert_books()
