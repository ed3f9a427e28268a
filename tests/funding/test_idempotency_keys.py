"""Funding's money-moving POSTs keep the same idempotency rules as orders: the same key and
body replay the first response, the same key with another body is 409
`IDEMPOTENCY_KEY_REUSED`, and keys are 1-64 characters of `A-Za-z0-9_-:+=/.` everywhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from tests.conftest import TestUser
from tests.exchange.conftest import fund
from tests.funding.conftest import FundingEnvFactory

MakeUser = Callable[..., Awaitable[TestUser]]


def _reused(r: httpx.Response) -> None:
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED", r.text


async def test_funding_keys_mean_the_same_request(
    funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    env = await funding_env()
    user = await funded_user("standard")
    bank = await env.link_bank(user)
    await fund(env.maker, user.id, 50_000)

    async def post(path: str, body: dict[str, object], key: str) -> httpx.Response:
        return await env.http.post(
            f"/api/v1/funding/{path}", json=body, headers={**user.headers, "Idempotency-Key": key}
        )

    deposit = {"amount": 1_000, "bank_account_id": bank}
    first = await post("deposits", deposit, "dep-1")
    assert first.status_code == 201, first.text
    again = await post("deposits", deposit, "dep-1")
    assert again.status_code == 201 and again.json() == first.json()
    _reused(await post("deposits", {**deposit, "amount": 1_001}, "dep-1"))

    withdrawal = {"amount": 2_000, "bank_account_id": bank, "speed": "standard"}
    w1 = await post("withdrawals", withdrawal, "wd-1")
    assert w1.status_code == 201, w1.text
    w2 = await post("withdrawals", withdrawal, "wd-1")
    assert w2.status_code == 201 and w2.json() == w1.json()
    _reused(await post("withdrawals", {**withdrawal, "amount": 2_001}, "wd-1"))
    _reused(await post("withdrawals", {**withdrawal, "speed": "instant"}, "wd-1"))

    # The same limits as order keys: 64 characters pass, 65 or other characters do not.
    assert (await post("deposits", {**deposit, "amount": 5}, "d" * 64)).status_code == 201
    for bad in ("d" * 65, "a b", "k;1"):
        r = await post("deposits", {**deposit, "amount": 6}, bad)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "INVALID_IDEMPOTENCY_KEY"), (
            r.text
        )
