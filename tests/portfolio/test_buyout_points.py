"""What used to land in `other_pnl`: an RWA buyout's payout is a realized sale of the holder's
lots (real RWA module, BuyoutWorkflow on real Temporal), and reward points are a holding
marked at the cash-redemption rate whose cash redemptions are realized P&L (real rewards
module). The JSON the endpoint writes is byte for byte what `PortfolioRead` would write."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from decimal import Decimal
from typing import Any

from pull.portfolio import service
from pull.portfolio.schemas import PortfolioRead
from tests.conftest import TestUser, UserFactory
from tests.rewards.conftest import RewardsEnv
from tests.rwa.conftest import RwaEnv, RwaEnvFactory


async def _view(http: Any, user: TestUser) -> dict[str, Any]:
    r = await http.get("/api/v1/portfolio", headers=user.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _wait(env: RwaEnv, path: str, key: str, *values: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = await env.get(path)
        if body[key] in values:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} never reached {values}: {body}")


async def test_buyout_payout_is_a_realized_sale_of_the_lots(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env(RWA_BUYOUT_VOTE_SECONDS=3)
    a, b = await env.investor(), await env.investor()
    asset = await env.trading_asset([(a, 60), (b, 40)], price_cents=1000)
    aid = asset["id"]
    before = await _view(env.http, a)
    [held] = [h for h in before["holdings"] if h["kind"] == "rwa"]
    assert Decimal(held["quantity"]) == 60 and held["cost_basis"] == 60_000
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
        for user in (a, b):
            vote = await env.http.post(
                f"/api/v1/rwa/buyouts/{offer['id']}/vote",
                json={"approve": True},
                headers=user.headers,
            )
            assert vote.status_code == 200, vote.text
        await _wait(env, f"/api/v1/rwa/buyouts/{offer['id']}", "status", "passed")
        r = await env.http.post(
            f"/api/admin/rwa/buyouts/{offer['id']}/settle", headers=second.headers
        )
        assert r.status_code == 200, r.text
        await env.wait_asset(aid, "distributed")

    payout = 150_001 * 60 // 100
    after = await _view(env.http, a)
    assert [h for h in after["holdings"] if h["kind"] == "rwa"] == []
    t = after["totals"]
    assert t["realized_pnl"] == payout - 60_000
    assert t["other_pnl"] == 0 and t["total_pnl"] == t["realized_pnl"] + t["unrealized_pnl"]
    r = await env.http.get(
        "/api/v1/portfolio/realized",
        params={"year": dt.datetime.now(dt.UTC).year},
        headers=a.headers,
    )
    assert r.status_code == 200, r.text
    [lot] = [x for x in r.json()["items"] if x["symbol"] == asset["symbol"]]
    assert Decimal(lot["quantity"]) == 60 and (lot["proceeds"], lot["cost"]) == (payout, 60_000)


async def test_points_are_a_holding_and_cash_redemptions_realize_them(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await rw.grant(user, 1_500)
    item = await rw.item(name="$5 cash", kind="cash_credit", points_price=500, stock=10)
    r = await rw.redeem(user, item["id"], quantity=2)
    assert r.status_code == 201, r.text
    async with rw.worker():
        await rw.wait_redemption(user, r.json()["id"], "fulfilled")

    view = await _view(rw.http, user)
    [pts] = [h for h in view["holdings"] if h["kind"] == "points"]
    cents = 500 * 100 // rw.settings.rewards_cash_points_per_dollar
    assert pts["symbol"] == "PTS" and Decimal(pts["quantity"]) == 500
    assert pts["market_value"] == cents
    assert (pts["cost_basis"], pts["unrealized_pnl"], pts["realized_pnl"]) == (0, cents, 1_000)
    assert pts["mark_source"] == "redemption_rate" and pts["lots"] == []
    assert view["points"]["cash_value"] == cents
    t = view["totals"]
    assert t["value"] == view["cash"]["total"] + cents == 1_000 + cents
    assert (t["net_deposits"], t["realized_pnl"], t["unrealized_pnl"]) == (0, 1_000, cents)
    assert t["other_pnl"] == 0

    # the endpoint's bytes are PortfolioRead's
    async with rw.maker() as s:
        data = await service.view(
            session=s,
            user_id=user.id,
            settings=rw.settings,
            broker=None,
            now=dt.datetime.now(dt.UTC),
        )
    fast = service.to_json(data)
    assert fast == PortfolioRead.model_validate(data).model_dump_json().encode()
    assert json.loads(fast)["holdings"] == [pts]
