"""Offerings end to end on real Temporal: opened through the admin API (four-eyes), subscribed
over HTTP, closed by the OfferingWorkflow: funded -> shares issued, consignor paid less the
sourcing fee, holds posted, lock-up, trading; under the minimum or canceled -> holds voided."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.rwa.conftest import RwaEnv, RwaEnvFactory


def _soon(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()


async def _holding(env: RwaEnv, user: Any, asset_id: str) -> dict[str, Any] | None:
    own = await env.get("/api/v1/rwa/ownership", user)
    for item in own["items"]:
        if item["asset_id"] == asset_id:
            return dict(item)
    return None


async def test_funded_offering_issues_shares_pays_consignor_and_opens_trading(
    rwa_env: RwaEnvFactory,
) -> None:
    env = await rwa_env()
    alice = await env.investor(cash=300_000)
    bob = await env.investor(cash=300_000)
    carol = await env.investor(cash=300_000)
    await env.admin(1)
    asset = await env.create_asset()
    async with env.worker():
        offering = await env.create_offering(
            asset["id"],
            total_shares=1000,
            price_cents=1000,
            min_raise_cents=500_000,
            closes_at=_soon(6),
        )
        assert offering["status"] == "draft" and offering["max_shares_per_investor"] == 199
        opened = await env.open_offering(offering["id"])
        assert opened["status"] == "open"
        listed = await env.get("/api/v1/rwa/listings", alice)
        assert [i["kind"] for i in listed["items"]] == ["offering"]
        for user, shares in ((alice, 199), (bob, 199), (carol, 150)):
            r = await env.subscribe(user, offering["id"], shares)
            assert r.status_code == 201, r.text
            assert r.json()["status"] == "held"
        assert (await env.balance(alice))["held"] == 199_000
        assert (await env.balance(alice))["available"] == 101_000
        live = await env.get(f"/api/v1/rwa/offerings/{offering['id']}")
        assert live["shares_subscribed"] == 548 and live["investors"] == 3
        assert live["raised_cents"] == 548_000
        done = await env.wait_offering(offering["id"], "funded")
        traded = await env.wait_asset(asset["id"], "trading")
    assert done["shares_subscribed"] == 548
    assert traded["shares_outstanding"] == 548
    assert traded["last_price_cents"] == 1000
    assert traded["locked_until"] is not None
    # holds posted: the cash left the investors
    assert await env.balance(alice) == {
        "available": 101_000,
        "held": 0,
        "pending_deposits": 0,
        "withdrawable": 101_000,
        "total": 101_000,
        "currency": "USD",
    }
    holding = await _holding(env, alice, asset["id"])
    assert holding is not None
    assert holding["shares"] == 199 and holding["cost_basis_cents"] == 199_000
    assert holding["value_cents"] == 199_000 and holding["symbol"] == asset["symbol"]
    subs = await env.get("/api/v1/rwa/subscriptions", carol)
    assert [(s["shares"], s["status"]) for s in subs["items"]] == [(150, "issued")]
    # consignor paid the raise less 5%; the fee is revenue; the offering escrow is empty
    consignor = asset["_consignor"]
    assert (await env.balance(consignor))["available"] == 548_000 - 27_400
    assert await env.account("fee_revenue") == 27_400
    assert await env.account(f"rwa.escrow:{offering['id']}") == 0
    assert await env.account("rwa.issued", asset["symbol"]) == -548
    await env.assert_books()


async def test_offering_below_minimum_voids_every_hold(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env()
    alice = await env.investor(cash=100_000)
    bob = await env.investor(cash=100_000)
    await env.admin(1)
    asset = await env.create_asset()
    async with env.worker():
        offering = await env.create_offering(
            asset["id"],
            total_shares=100,
            price_cents=2500,
            min_raise_cents=200_000,
            closes_at=_soon(5),
        )
        await env.open_offering(offering["id"])
        assert (await env.subscribe(alice, offering["id"], 19)).status_code == 201
        assert (await env.subscribe(bob, offering["id"], 19)).status_code == 201
        assert (await env.balance(bob))["held"] == 47_500
        done = await env.wait_offering(offering["id"], "failed")
    assert "minimum" in done["close_reason"]
    for user in (alice, bob):
        b = await env.balance(user)
        assert b["available"] == 100_000 and b["held"] == 0
        subs = await env.get("/api/v1/rwa/subscriptions", user)
        assert [s["status"] for s in subs["items"]] == ["voided"]
        assert await _holding(env, user, asset["id"]) is None
    assert (await env.get(f"/api/v1/rwa/assets/{asset['id']}"))["state"] == "canceled"
    assert (await env.balance(asset["_consignor"]))["available"] == 0
    assert await env.account("fee_revenue") == 0
    await env.assert_books()


async def test_canceled_offering_voids_holds_at_once(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env()
    asset = await env.create_asset()
    offering = await env.create_offering(asset["id"], closes_at=_soon(600))
    alice = await env.investor(cash=100_000)
    async with env.worker():
        await env.open_offering(offering["id"])
        assert (await env.subscribe(alice, offering["id"], 50)).status_code == 201
        admin = await env.admin(0)
        r = await env.http.post(
            f"/api/admin/rwa/offerings/{offering['id']}/cancel",
            json={"reason": "consignor withdrew the item"},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "canceled"
        late = await env.subscribe(alice, offering["id"], 1)
        assert late.status_code == 409
        assert late.json()["error"]["code"] == "OFFERING_NOT_OPEN"
        await env.wait_offering(offering["id"], "canceled")
    assert (await env.balance(alice))["available"] == 100_000
    assert (await env.get(f"/api/v1/rwa/assets/{asset['id']}"))["state"] == "canceled"
    # a canceled asset may be offered again
    again = await env.create_offering(asset["id"])
    assert again["status"] == "draft"
    await env.assert_books()
