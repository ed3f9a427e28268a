"""GET /api/v1/portfolio over HTTP against a real `pull api` process: FIFO lots, marks, P&L."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.portfolio.conftest import call, create_market, fund, order


def _holding(body: dict[str, Any], symbol: str) -> dict[str, Any]:
    found = [h for h in body["holdings"] if h["symbol"] == symbol]
    assert len(found) == 1, body["holdings"]
    return dict(found[0])


async def test_prediction_lots_marks_and_pnl(
    api_server: str,
    user_factory: Any,
    kyc_tier: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ticker = await create_market(sessionmaker)
    a, b = await user_factory(), await user_factory()
    for u in (a, b):
        await kyc_tier(u.id, "standard")
        await fund(sessionmaker, u.id, 100_000)

    # a rests a YES bid at 40; b takes it buying NO (10 at 60, taker fee 17)
    await order(api_server, a, ticker=ticker, side="yes", action="buy", count=10, yes_price=40)
    await order(api_server, b, ticker=ticker, side="no", action="buy", count=10, no_price=60)
    # a rests a sale of 4 YES at 50; b buys 4 YES, netting 4 of its NO away (fee 7)
    await order(api_server, a, ticker=ticker, side="yes", action="sell", count=4, yes_price=50)
    await order(api_server, b, ticker=ticker, side="yes", action="buy", count=4, yes_price=50)

    r = await call(api_server, a, "GET", "/api/v1/portfolio")
    assert r.status_code == 200, r.text
    pa = r.json()
    yes = _holding(pa, f"{ticker}:YES")
    assert Decimal(yes["quantity"]) == 6 and yes["kind"] == "prediction"
    assert yes["mark_source"] == "last_trade" and Decimal(yes["mark"]) == 50
    assert (yes["cost_basis"], yes["market_value"], yes["unrealized_pnl"]) == (240, 300, 60)
    assert yes["realized_pnl"] == 4 * 50 - 4 * 40
    assert Decimal(yes["average_cost"]) == 40 and len(yes["lots"]) == 1
    assert yes["day_change"] == 60  # bought today: from cost
    assert pa["cash"] == {"available": 99_800, "held": 0, "pending": 0, "total": 99_800}
    t = pa["totals"]
    assert t["value"] == 99_800 + 300 and t["net_deposits"] == 100_000
    assert t["total_pnl"] == 100 == t["realized_pnl"] + t["unrealized_pnl"]
    assert t["other_pnl"] == 0

    pb = (await call(api_server, b, "GET", "/api/v1/portfolio")).json()
    no = _holding(pb, f"{ticker}:NO")
    # lot: 10 NO at 60 + fee 17 = 617; 4 closed at 100 - 50 = 50 each, less fee 7
    assert Decimal(no["quantity"]) == 6 and Decimal(no["mark"]) == 50
    assert no["cost_basis"] == 617 - 617 * 4 // 10
    assert no["realized_pnl"] == (200 - 7) - 617 * 4 // 10
    assert pb["cash"]["total"] == 100_000 - 600 - 17 + 200 - 7
    tb = pb["totals"]
    assert tb["total_pnl"] == tb["value"] - 100_000 == tb["realized_pnl"] + tb["unrealized_pnl"]


async def test_resting_order_cash_is_held_and_anonymous_is_401(
    api_server: str, user_factory: Any, kyc_tier: Any, sessionmaker: Any
) -> None:
    ticker = await create_market(sessionmaker)
    a = await user_factory()
    await kyc_tier(a.id, "standard")
    await fund(sessionmaker, a.id, 10_000)
    await order(api_server, a, ticker=ticker, side="yes", action="buy", count=10, yes_price=30)
    body = (await call(api_server, a, "GET", "/api/v1/portfolio")).json()
    assert body["cash"]["held"] == 300 and body["cash"]["available"] == 9_700
    assert body["holdings"] == [] and body["totals"]["value"] == 10_000
    async with httpx.AsyncClient(base_url=api_server) as c:
        r = await c.get("/api/v1/portfolio")
    assert r.status_code == 401 and r.json()["error"]["code"]
