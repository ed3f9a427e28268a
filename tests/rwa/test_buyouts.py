"""Buyouts through HTTP with the BuyoutWorkflow on real Temporal: the offer halts trading, the
holders vote pro rata, a passed offer settles (four-eyes) and is distributed pro rata with the
shares retired; a failed one lapses and trading resumes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.conftest import TestUser
from tests.rwa.conftest import RwaEnv, RwaEnvFactory


async def _wait_buyout(env: RwaEnv, buyout_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 40
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = await env.get(f"/api/v1/rwa/buyouts/{buyout_id}")
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"buyout never reached {statuses}: {body}")


async def _vote(env: RwaEnv, user: TestUser, buyout_id: str, approve: bool) -> Any:
    return await env.http.post(
        f"/api/v1/rwa/buyouts/{buyout_id}/vote", json={"approve": approve}, headers=user.headers
    )


async def test_passed_buyout_settles_and_distributes_pro_rata(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env(RWA_BUYOUT_VOTE_SECONDS=4)
    a, b, c = await env.investor(), await env.investor(), await env.investor()
    asset = await env.trading_asset([(a, 50), (b, 30), (c, 20)], price_cents=1000)
    aid = asset["id"]
    resting = await env.order(c, aid, "sell", 1500, 5)
    assert resting.status_code == 201
    admin, second = await env.admin(0), await env.admin(1)
    async with env.worker():
        r = await env.http.post(
            f"/api/admin/rwa/assets/{aid}/buyouts",
            json={"buyer": "Heritage Auctions", "price_cents": 150_001},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        offer = r.json()
        env.workflow_ids.append(f"rwa-buyout-{offer['id']}")
        assert offer["status"] == "voting" and offer["shares_needed"] == 50
        assert offer["price_per_share_cents"] == 1500
        # trading halted; c's resting sell was canceled and its shares returned
        order = await env.get(f"/api/v1/rwa/orders/{resting.json()['id']}", c)
        assert (order["status"], order["cancel_reason"]) == ("canceled", "buyout_vote")
        halted = await env.order(a, aid, "sell", 1000, 1)
        assert halted.json()["error"]["code"] == "TRADING_HALTED"
        assert (await env.get(f"/api/v1/rwa/assets/{aid}"))["state"] == "buyout_vote"
        outsider = await env.investor()
        r = await _vote(env, outsider, offer["id"], True)
        assert r.status_code == 403 and r.json()["error"]["code"] == "NOT_A_HOLDER"
        assert (await _vote(env, b, offer["id"], True)).json()["yes_shares"] == 30
        assert (await _vote(env, c, offer["id"], True)).json()["yes_shares"] == 50
        changed = await _vote(env, b, offer["id"], False)  # b changes its mind
        assert (changed.json()["yes_shares"], changed.json()["no_shares"]) == (20, 30)
        assert (await _vote(env, a, offer["id"], True)).json()["yes_shares"] == 70
        mine = await env.get(f"/api/v1/rwa/buyouts/{offer['id']}", a)
        assert (mine["my_vote"], mine["my_shares"]) == (True, 50)
        passed = await _wait_buyout(env, offer["id"], "passed")
        late = await _vote(env, b, offer["id"], True)
        assert late.status_code == 409
        own = await env.http.post(
            f"/api/admin/rwa/buyouts/{offer['id']}/settle", headers=admin.headers
        )
        assert own.status_code == 403 and own.json()["error"]["code"] == "FOUR_EYES_REQUIRED"
        r = await env.http.post(
            f"/api/admin/rwa/buyouts/{offer['id']}/settle", headers=second.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "settled"
        done = await env.wait_asset(aid, "distributed")
    assert passed["yes_shares"] == 70 and done["shares_outstanding"] == 0
    # pro rata: floor(150 001 x shares / 100); the 1 cent left over is revenue
    for user, shares in ((a, 50), (b, 30), (c, 20)):
        assert (await env.balance(user))["available"] == 150_001 * shares // 100
        assert await env.shares(user, aid) == (0, 0, 0)
    fees_before = 100 * 1000 * 5 // 100  # the offering's sourcing fee
    assert await env.account("fee_revenue") == fees_before + 1
    assert await env.account(f"rwa.sale:{offer['id']}") == 0
    assert await env.account("rwa.issued", asset["symbol"]) == 0
    listed = await env.get(f"/api/v1/rwa/assets/{aid}/buyouts", a)
    assert [x["status"] for x in listed] == ["settled"]
    assert listed[0]["distributed_at"] is not None
    await env.assert_books()


async def test_failed_buyout_lapses_and_trading_resumes(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env(RWA_BUYOUT_VOTE_SECONDS=3)
    a, b = await env.investor(), await env.investor()
    asset = await env.trading_asset([(a, 49), (b, 51)])
    aid = asset["id"]
    admin = await env.admin(0)
    draft = await env.create_asset()
    r = await env.http.post(
        f"/api/admin/rwa/assets/{draft['id']}/buyouts",
        json={"buyer": "x", "price_cents": 1},
        headers=admin.headers,
    )
    assert r.status_code == 409
    async with env.worker():
        r = await env.http.post(
            f"/api/admin/rwa/assets/{aid}/buyouts",
            json={"buyer": "Lowball LLC", "price_cents": 50_000},
            headers=admin.headers,
        )
        offer = r.json()
        env.workflow_ids.append(f"rwa-buyout-{offer['id']}")
        await _vote(env, a, offer["id"], True)
        await _vote(env, b, offer["id"], False)
        failed = await _wait_buyout(env, offer["id"], "failed")
        await env.wait_asset(aid, "trading")
        r = await env.http.post(
            f"/api/admin/rwa/buyouts/{offer['id']}/settle", headers=(await env.admin(1)).headers
        )
        assert r.status_code == 409
    assert (failed["yes_shares"], failed["no_shares"]) == (49, 51)
    assert (await env.order(a, aid, "sell", 1000, 1)).status_code == 201
    assert await env.shares(b, aid) == (51, 0, 51_000)
    await env.assert_books()
