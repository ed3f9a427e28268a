"""RWA shares in the portfolio: issued subscriptions and secondary trades (real RWA module)
become FIFO lots, marked at the last trade; the view over HTTP from a real `pull api`, and the
history's live point (the bulk valuation of snapshots) agrees with it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.portfolio.conftest import call


async def test_rwa_lots_and_last_trade_mark(api_server: str, rwa_env: Any) -> None:
    env = await rwa_env()
    a, b = await env.investor(), await env.investor()
    asset = await env.trading_asset([(a, 10), (b, 10)], price_cents=1000)
    await env.fund(b.id, 10_000)
    # a sells 4 at 12.00 to b; then a rests 2 more at 15.00 (still a's, in the order escrow)
    r = await env.order(a, asset["id"], "sell", 1200, 4)
    assert r.status_code == 201, r.text
    r = await env.order(b, asset["id"], "buy", 1200, 4)
    assert r.status_code == 201, r.text
    r = await env.order(a, asset["id"], "sell", 1500, 2)
    assert r.status_code == 201, r.text

    va = (await call(api_server, a, "GET", "/api/v1/portfolio")).json()
    [ha] = [h for h in va["holdings"] if h["kind"] == "rwa"]
    assert ha["symbol"] == asset["symbol"] and Decimal(ha["quantity"]) == 6
    assert ha["mark_source"] == "last_trade" and Decimal(ha["mark"]) == 1200
    assert (ha["cost_basis"], ha["market_value"]) == (6_000, 7_200)
    assert ha["realized_pnl"] == 4 * 1200 - 4 * 1000
    shares, reserved, _ = await env.shares(a, asset["id"])
    assert (shares, reserved) == (6, 2)

    vb = (await call(api_server, b, "GET", "/api/v1/portfolio")).json()
    [hb] = [h for h in vb["holdings"] if h["kind"] == "rwa"]
    assert [(lot["quantity"], lot["cost"]) for lot in hb["lots"]] == [("10", 10_000), ("4", 4_800)]
    assert Decimal(hb["average_cost"]) == Decimal("1057.1429") and hb["realized_pnl"] == 0

    for user, view in ((a, va), (b, vb)):
        h = (
            await call(
                api_server, user, "GET", "/api/v1/portfolio/history", params={"period": "1D"}
            )
        ).json()
        assert round(h["equity"][-1] * 100) == view["totals"]["value"]
        t = view["totals"]
        assert t["realized_pnl"] + t["unrealized_pnl"] == t["total_pnl"]
