"""Funding endpoints without the workflows: link token, bank accounts, listing, scoping."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import text

from tests.conftest import TestUser
from tests.funding.conftest import FundingEnvFactory

MakeUser = Callable[..., Awaitable[TestUser]]


async def test_bank_accounts_and_listing_are_the_callers_own(
    funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    env = await funding_env()
    user = await funded_user("basic")
    other = await funded_user("basic")
    r = await env.http.post("/api/v1/funding/link-token", headers=user.headers)
    assert r.status_code == 200 and r.json()["link_token"].startswith("link-sandbox-")
    r = await env.http.post(
        "/api/v1/funding/sandbox/public-token",
        json={"username": "user_good", "password": "wrong"},
        headers=user.headers,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_CREDENTIALS"
    r = await env.http.post(
        "/api/v1/funding/bank-accounts",
        json={"public_token": "public-sandbox-unknown", "account_id": "x"},
        headers=user.headers,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_PUBLIC_TOKEN"

    bank = await env.link_bank(user)
    r = await env.http.get("/api/v1/funding/bank-accounts", headers=user.headers)
    (item,) = r.json()["items"]
    assert item["id"] == bank and item["mask"] == "0000" and "access_token" not in str(item)
    async with env.maker() as s:
        stored = await s.scalar(text("SELECT access_token_enc FROM bank_accounts"))
    assert stored and "access-sandbox" not in stored  # encrypted at rest

    ids = [(await env.deposit(user, bank, 1_000 + n))["id"] for n in range(3)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (
            await env.http.get("/api/v1/funding/deposits", params=params, headers=user.headers)
        ).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["cursor"]
        if not cursor:
            break
    assert seen == ids[::-1]
    assert (await env.http.get("/api/v1/funding/deposits", headers=other.headers)).json()[
        "items"
    ] == []
    r = await env.http.get(f"/api/v1/funding/deposits/{ids[0]}", headers=other.headers)
    assert r.status_code == 404
    r = await env.http.post(
        "/api/v1/funding/deposits",
        json={"amount": 100, "bank_account_id": bank},
        headers={**other.headers, "Idempotency-Key": "x"},
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "BANK_ACCOUNT_NOT_FOUND"
    r = await env.http.delete(f"/api/v1/funding/bank-accounts/{bank}", headers=other.headers)
    assert r.status_code == 404
    r = await env.http.delete(f"/api/v1/funding/bank-accounts/{bank}", headers=user.headers)
    assert r.status_code == 204
    assert (await env.http.get("/api/v1/funding/bank-accounts", headers=user.headers)).json()[
        "items"
    ] == []
    r = await env.http.post(
        "/api/v1/funding/deposits",
        json={"amount": 100, "bank_account_id": bank},
        headers={**user.headers, "Idempotency-Key": "after-unlink"},
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "BANK_ACCOUNT_UNLINKED"
