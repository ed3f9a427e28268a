"""Stocks in the portfolio: sandbox-broker fills (real brokerage module), FIFO lots, the quote
midpoint as mark; the view read over HTTP from a real `pull api` process."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.portfolio.conftest import call


async def test_stock_lots_marked_at_the_quote_midpoint(
    api_server: str, trader_factory: Any, drain: Any, market_open: None
) -> None:
    t = await trader_factory(cash=200_000)
    r = await t.http.put(
        "/api/v1/trading/sandbox/quotes/AAPL",
        json={"bid": "199.00", "ask": "200.00", "ask_size": "100", "bid_size": "100"},
        headers=t.headers,
    )
    assert r.status_code == 200, r.text
    buy = await t.order(symbol="AAPL", side="buy", type="market", qty="2")
    await drain()
    bought = await t.get(f"/orders/{buy['id']}")
    assert bought["status"] == "filled", bought
    sell = await t.order(symbol="AAPL", side="sell", type="market", qty="0.5")
    await drain()
    sold = await t.get(f"/orders/{sell['id']}")
    assert sold["status"] == "filled", sold
    r = await t.http.put(
        "/api/v1/trading/sandbox/quotes/AAPL",
        json={"bid": "210.00", "ask": "212.00", "ask_size": "100", "bid_size": "100"},
        headers=t.headers,
    )
    assert r.status_code == 200, r.text

    view = await call(api_server, t.user, "GET", "/api/v1/portfolio")
    assert view.status_code == 200, view.text
    body = view.json()
    [h] = [h for h in body["holdings"] if h["symbol"] == "AAPL"]
    assert h["kind"] == "stock" and Decimal(h["quantity"]) == Decimal("1.5")
    assert h["mark_source"] == "quote_mid" and Decimal(h["mark"]) == 21100
    cost = bought["filled_cents"]
    closed_cost = cost * 1 // 4  # 0.5 of the 2-share lot, rounded down
    assert h["cost_basis"] == cost - closed_cost
    assert h["realized_pnl"] == sold["filled_cents"] - closed_cost
    assert h["market_value"] == int(Decimal("1.5") * 21100)
    assert h["unrealized_pnl"] == h["market_value"] - h["cost_basis"]
    # the brokerage's own position agrees on quantity and (one lot: average = FIFO) cost
    [pos] = (await t.get("/positions"))["items"]
    assert Decimal(pos["qty"]) == Decimal("1.5") and pos["cost_cents"] == h["cost_basis"]
    totals = body["totals"]
    assert totals["total_pnl"] == totals["value"] - 200_000
    assert totals["realized_pnl"] + totals["unrealized_pnl"] == totals["total_pnl"]


async def test_day_change_is_from_the_brokers_previous_close(
    api_server: str,
    trader_factory: Any,
    drain: Any,
    market_open: None,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Shares held since before today change by quantity x (mark - the broker's previous
    close: its snapshot's previous daily bar), not from PULL's last fill before today."""
    t = await trader_factory(cash=200_000)
    quote = {"bid": "199.00", "ask": "200.00", "ask_size": "100", "bid_size": "100"}
    r = await t.http.put("/api/v1/trading/sandbox/quotes/MSFT", json=quote, headers=t.headers)
    assert r.status_code == 200, r.text
    buy = await t.order(symbol="MSFT", side="buy", type="market", qty="2")
    await drain()
    assert (await t.get(f"/orders/{buy['id']}"))["status"] == "filled"
    async with sessionmaker() as s, s.begin():  # bought two days ago
        await s.execute(
            text(
                "UPDATE brokerage_executions SET created_at = now() - interval '2 days' "
                "WHERE user_id = :u"
            ),
            {"u": t.user.id},
        )
    quote = {**quote, "bid": "210.00", "ask": "212.00", "previous_close": "205.25"}
    r = await t.http.put("/api/v1/trading/sandbox/quotes/MSFT", json=quote, headers=t.headers)
    assert r.status_code == 200, r.text

    view = await call(api_server, t.user, "GET", "/api/v1/portfolio")
    assert view.status_code == 200, view.text
    [h] = [h for h in view.json()["holdings"] if h["symbol"] == "MSFT"]
    assert h["mark_source"] == "quote_mid" and Decimal(h["mark"]) == 21100
    # 2 x (211.00 - 205.25) dollars; from the last fill (200.00) it would be 2 x 11.00
    assert h["day_change"] == 2 * (21100 - 20525) == 1150, h
    assert view.json()["totals"]["day_change"] == 1150
