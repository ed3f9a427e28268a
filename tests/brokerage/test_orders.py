"""Orders through the HTTP API against the sandbox broker, fills applied by the consumer."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.ledger import service as ledger
from tests.brokerage.conftest import Drain, TraderFactory

pytestmark = pytest.mark.usefixtures("market_open")


async def _balance(maker: async_sessionmaker[AsyncSession], user_id: uuid.UUID) -> ledger.Balance:
    async with maker() as s:
        return await ledger.get_balance(session=s, user_id=user_id)


async def test_market_buy_holds_then_fill_posts_cost_and_releases_buffer(
    trader_factory: TraderFactory, drain: Drain, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    t = await trader_factory(cash=100_000)
    quote = await t.get("/quotes/AAPL")
    ask = Decimal(quote["ask"])
    order = await t.order(symbol="AAPL", side="buy", type="market", qty="0.5")
    assert order["status"] in ("new", "accepted")
    held = order["hold_cents"]
    assert held >= int(Decimal("0.5") * ask * 100)
    bal = await _balance(sessionmaker, t.user.id)
    assert bal.available == 100_000 - held
    applied = await drain()
    assert applied >= 2
    filled = await t.get(f"/orders/{order['id']}")
    assert filled["status"] == "filled"
    assert Decimal(filled["filled_qty"]) == Decimal("0.5")
    cost = filled["filled_cents"]
    assert cost == int((Decimal("0.5") * ask * 100).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    assert filled["hold_cents"] == 0
    bal = await _balance(sessionmaker, t.user.id)
    assert bal.available == 100_000 - cost and bal.held == 0
    positions = (await t.get("/positions"))["items"]
    assert positions[0]["symbol"] == "AAPL" and Decimal(positions[0]["qty"]) == Decimal("0.5")
    assert positions[0]["cost_cents"] == cost
    fills = (await t.get(f"/orders/{order['id']}/fills"))["items"]
    assert len(fills) == 1 and fills[0]["amount_cents"] == cost
    assert await drain() == 0  # nothing new: applied once
    async with sessionmaker() as s:
        assert (await ledger.trial_balance(session=s)).balanced


async def test_validation_errors_are_typed_4xx(trader_factory: TraderFactory) -> None:
    t = await trader_factory(cash=100_000)
    cases = [
        (
            {"symbol": "AAPL", "side": "buy", "type": "market", "qty": "1", "limit_price": "10"},
            400,
            "PRICE_NOT_ALLOWED",
        ),
        (
            {"symbol": "AAPL", "side": "buy", "type": "market", "qty": "1", "stop_price": "10"},
            400,
            "PRICE_NOT_ALLOWED",
        ),
        (
            {
                "symbol": "AAPL",
                "side": "buy",
                "type": "limit",
                "qty": "1",
                "stop_price": "10",
                "limit_price": "10",
            },
            400,
            "PRICE_NOT_ALLOWED",
        ),
        (
            {"symbol": "AAPL", "side": "buy", "type": "limit", "qty": "1"},
            400,
            "LIMIT_PRICE_REQUIRED",
        ),
        ({"symbol": "AAPL", "side": "buy", "type": "stop", "qty": "1"}, 400, "STOP_PRICE_REQUIRED"),
        ({"symbol": "AAPL", "side": "buy", "qty": "1", "notional": 500}, 400, "QTY_OR_NOTIONAL"),
        ({"symbol": "AAPL", "side": "buy"}, 400, "QTY_OR_NOTIONAL"),
        ({"symbol": "AAPL", "side": "buy", "qty": "0.0000000001"}, 400, "INVALID_QTY"),
        (
            {
                "symbol": "AAPL",
                "side": "buy",
                "type": "limit",
                "notional": 500,
                "limit_price": "10",
            },
            400,
            "NOTIONAL_MARKET_ONLY",
        ),
        (
            {"symbol": "AAPL", "side": "buy", "qty": "0.5", "time_in_force": "gtc"},
            400,
            "INVALID_TIME_IN_FORCE",
        ),
        ({"symbol": "WHOLE", "side": "buy", "qty": "0.5"}, 400, "NOT_FRACTIONABLE"),
        (
            {"symbol": "BTC/USD", "side": "buy", "qty": "0.001", "time_in_force": "day"},
            400,
            "INVALID_TIME_IN_FORCE",
        ),
        ({"symbol": "NOPE", "side": "buy", "qty": "1"}, 404, "ASSET_NOT_FOUND"),
        ({"symbol": "XYZNF", "side": "buy", "qty": "1"}, 422, "ASSET_NOT_TRADABLE"),
        ({"symbol": "AAPL", "side": "buy", "notional": 50}, 400, "BELOW_MINIMUM"),
        ({"symbol": "AAPL", "side": "sell", "qty": "1"}, 409, "INSUFFICIENT_SHARES"),
        ({"symbol": "AAPL", "side": "buy", "qty": "5"}, 409, "INSUFFICIENT_FUNDS"),
        ({"symbol": "AAPL", "side": "buy", "qty": "300"}, 403, "LIMIT_EXCEEDED"),
        ({"symbol": "AAPL", "side": "hold", "qty": "1"}, 422, "VALIDATION_ERROR"),
        ({"symbol": "AAPL", "side": "buy", "qty": "-1"}, 422, "VALIDATION_ERROR"),
        ({"symbol": "AAPL", "side": "buy", "qty": "1e400"}, 422, "VALIDATION_ERROR"),
        ({"symbol": "AAPL", "side": "buy", "qty": "NaN"}, 422, "VALIDATION_ERROR"),
    ]
    for body, status, code in cases:
        out = await t.order(expect=status, **body)
        assert out["error"]["code"] == code, (body, out)
    bp = await t.get("/buying-power")
    assert bp["available"] == 100_000 and bp["held"] == 0  # nothing was held by a refusal
    r = await t.http.post(
        "/api/v1/trading/orders",
        json={"symbol": "AAPL", "side": "buy", "qty": "1"},
        headers=t.headers,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "IDEMPOTENCY_KEY_REQUIRED"


async def test_idempotency_key_and_client_order_id_replay(
    trader_factory: TraderFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    t = await trader_factory(cash=100_000)
    body = {
        "symbol": "AAPL",
        "side": "buy",
        "type": "limit",
        "qty": "1",
        "limit_price": "100",
        "time_in_force": "gtc",
    }
    headers = {**t.headers, "Idempotency-Key": "k-1"}
    first = await t.http.post("/api/v1/trading/orders", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await t.http.post("/api/v1/trading/orders", json=body, headers=headers)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await t.http.post("/api/v1/trading/orders", json={**body, "qty": "2"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    by_coid = await t.order(client_order_id="mine-1", **body)
    replay = await t.order(expect=200, client_order_id="mine-1", **body)
    assert replay["id"] == by_coid["id"]
    bal = await _balance(sessionmaker, t.user.id)
    assert bal.held == 20_000  # two orders held once each
    listed = await t.get("/orders")
    assert len(listed["items"]) == 2


async def test_limit_order_rests_then_fills_partially_as_the_quote_crosses(
    trader_factory: TraderFactory, drain: Drain, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    t = await trader_factory(cash=500_000)
    order = await t.order(
        symbol="MSFT", side="buy", type="limit", qty="10", limit_price="400", time_in_force="day"
    )
    assert order["hold_cents"] == 400_000
    await drain()
    assert (await t.get(f"/orders/{order['id']}"))["status"] == "new"
    # the ask falls to 399.50 with 4 shares offered: a partial fill at 399.50
    r = await t.http.put(
        "/api/v1/trading/sandbox/quotes/MSFT",
        json={"bid": "399.40", "ask": "399.50", "ask_size": "4", "bid_size": "100"},
        headers=t.headers,
    )
    assert r.status_code == 200, r.text
    await drain()
    part = await t.get(f"/orders/{order['id']}")
    assert part["status"] == "partially_filled"
    assert Decimal(part["filled_qty"]) == 4 and part["filled_cents"] == 159_800
    assert part["hold_cents"] == 400_000 - 159_800
    bal = await _balance(sessionmaker, t.user.id)
    assert bal.available == 100_000 and bal.held == 400_000 - 159_800
    # cancel the rest: the hold is released, the fill stays
    r = await t.http.delete(f"/api/v1/trading/orders/{order['id']}", headers=t.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "canceled" and r.json()["hold_cents"] == 0
    bal = await _balance(sessionmaker, t.user.id)
    assert bal.available == 500_000 - 159_800 and bal.held == 0
    again = await t.http.delete(f"/api/v1/trading/orders/{order['id']}", headers=t.headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "ORDER_NOT_CANCELABLE"
    await drain()
    final = await t.get(f"/orders/{order['id']}")
    assert final["status"] == "canceled" and Decimal(final["filled_qty"]) == 4
    pos = (await t.get("/positions"))["items"][0]
    assert Decimal(pos["qty"]) == 4 and pos["cost_cents"] == 159_800
    trades = (await t.get("/trades"))["items"]
    assert [x["amount_cents"] for x in trades] == [159_800]


async def test_replace_moves_the_hold_to_the_new_order(
    trader_factory: TraderFactory, drain: Drain, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    t = await trader_factory(cash=100_000)
    order = await t.order(
        symbol="KO", side="buy", type="limit", qty="10", limit_price="50", time_in_force="gtc"
    )
    assert order["hold_cents"] == 50_000
    r = await t.http.patch(
        f"/api/v1/trading/orders/{order['id']}",
        json={"limit_price": "55", "qty": "8"},
        headers=t.headers,
    )
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["replaces"] == order["id"] and new["hold_cents"] == 44_000
    old = await t.get(f"/orders/{order['id']}")
    assert old["status"] == "replaced" and old["replaced_by"] == new["id"]
    assert old["hold_cents"] == 0
    bal = await _balance(sessionmaker, t.user.id)
    assert bal.held == 44_000
    await drain()
    # the quote crosses the new price: filled at the ask
    await t.http.put(
        "/api/v1/trading/sandbox/quotes/KO",
        json={"bid": "54.90", "ask": "55.00"},
        headers=t.headers,
    )
    await drain()
    done = await t.get(f"/orders/{new['id']}")
    assert done["status"] == "filled" and done["filled_cents"] == 44_000
    bal = await _balance(sessionmaker, t.user.id)
    assert bal.available == 56_000 and bal.held == 0
    r = await t.http.patch(
        f"/api/v1/trading/orders/{new['id']}", json={"limit_price": "56"}, headers=t.headers
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "ORDER_NOT_REPLACEABLE"


async def test_sell_credits_proceeds_and_realizes_pnl(
    trader_factory: TraderFactory, drain: Drain, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    t = await trader_factory(cash=100_000)
    await t.http.put(
        "/api/v1/trading/sandbox/quotes/ETH/USD",
        json={"bid": "1999", "ask": "2000"},
        headers=t.headers,
    )
    buy = await t.order(symbol="ETH/USD", side="buy", qty="0.02", time_in_force="gtc")
    await drain()
    assert (await t.get(f"/orders/{buy['id']}"))["filled_cents"] == 4_000
    await t.http.put(
        "/api/v1/trading/sandbox/quotes/ETH/USD",
        json={"bid": "2500", "ask": "2501"},
        headers=t.headers,
    )
    too_many = await t.order(
        expect=409, symbol="ETH/USD", side="sell", qty="0.03", time_in_force="gtc"
    )
    assert too_many["error"]["code"] == "INSUFFICIENT_SHARES"
    sell = await t.order(symbol="ETH/USD", side="sell", qty="0.01", time_in_force="ioc")
    await drain()
    done = await t.get(f"/orders/{sell['id']}")
    assert done["status"] == "filled" and done["filled_cents"] == 2_500
    pos = (await t.get("/positions"))["items"][0]
    assert Decimal(pos["qty"]) == Decimal("0.01") and pos["cost_cents"] == 2_000
    assert pos["realized_pl_cents"] == 500
    bal = await _balance(sessionmaker, t.user.id)
    assert bal.available == 100_000 - 4_000 + 2_500
    bp = await t.get("/buying-power")
    assert bp == {
        "available": bal.available,
        "held": 0,
        "held_for_orders": 0,
        "pending": 0,
        "total": bal.available,
    }


async def test_orders_are_the_callers_own_and_paginate(
    trader_factory: TraderFactory, drain: Drain
) -> None:
    a = await trader_factory(cash=100_000)
    b = await trader_factory(cash=100_000)
    ids = []
    for i in range(5):
        o = await a.order(
            symbol="BTC/USD",
            side="buy",
            type="limit",
            qty="0.0001",
            limit_price=str(10000 + i),
            time_in_force="gtc",
        )
        ids.append(o["id"])
    page = await a.get("/orders", limit=2)
    seen = [x["id"] for x in page["items"]]
    while page["cursor"]:
        page = await a.get("/orders", limit=2, cursor=page["cursor"])
        seen += [x["id"] for x in page["items"]]
    assert seen == list(reversed(ids))
    assert (await a.get("/orders", status="open"))["items"]
    assert (await b.get("/orders"))["items"] == []
    for path in (f"/orders/{ids[0]}", f"/orders/{ids[0]}/fills"):
        r = await b.http.get(f"/api/v1/trading{path}", headers=b.headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "ORDER_NOT_FOUND"
    r = await b.http.delete(f"/api/v1/trading/orders/{ids[0]}", headers=b.headers)
    assert r.status_code == 404
    r = await a.http.get("/api/v1/trading/orders", params={"cursor": "%%%"}, headers=a.headers)
    assert r.status_code == 400
    r = await a.http.get("/api/v1/trading/orders/not-a-uuid", headers=a.headers)
    assert r.status_code == 422


async def test_equities_wait_for_the_open_crypto_trades_now(
    trader_factory: TraderFactory, drain: Drain
) -> None:
    t = await trader_factory(cash=100_000)
    r = await t.http.put(
        "/api/v1/trading/sandbox/clock", json={"market": "closed"}, headers=t.headers
    )
    assert r.status_code == 200
    assert (await t.get("/quotes/SPY"))["market_open"] is False
    assert (await t.get("/quotes/BTC/USD"))["market_open"] is True
    stock = await t.order(symbol="SPY", side="buy", notional=10_000)
    assert stock["status"] == "accepted"
    coin = await t.order(symbol="BTC/USD", side="buy", notional=1_000, time_in_force="gtc")
    await drain()
    assert (await t.get(f"/orders/{coin['id']}"))["status"] == "filled"
    assert (await t.get(f"/orders/{stock['id']}"))["status"] == "accepted"
    await t.http.put("/api/v1/trading/sandbox/clock", json={"market": "open"}, headers=t.headers)
    await drain()
    done = await t.get(f"/orders/{stock['id']}")
    assert done["status"] == "filled" and done["filled_cents"] <= 10_000
    assert done["filled_cents"] >= 9_999


async def test_account_opening_needs_kyc_standard_and_its_data(
    trader_factory: TraderFactory,
    user_factory,
    kyc_tier,
    http,  # type: ignore[no-untyped-def]
) -> None:
    u = await user_factory()
    r = await http.post("/api/v1/trading/account", headers=u.headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "KYC_REQUIRED"
    r = await http.post(
        "/api/v1/trading/orders",
        json={"symbol": "AAPL", "side": "buy", "qty": "1", "client_order_id": "x"},
        headers=u.headers,
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "BROKERAGE_ACCOUNT_REQUIRED"
    await kyc_tier(u.id, "standard")
    r = await http.post("/api/v1/trading/account", headers=u.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "KYC_DATA_MISSING"
    t = await trader_factory(open_account=False)
    r = await http.get("/api/v1/trading/account", headers=t.headers)
    assert r.status_code == 403
    r = await http.post("/api/v1/trading/account", headers=t.headers)
    assert r.status_code == 201 and r.json()["status"] == "ACTIVE"
    again = await http.post("/api/v1/trading/account", headers=t.headers)
    assert again.status_code == 200 and again.json() == r.json()
    assert (await http.get("/api/v1/trading/account", headers=t.headers)).json() == r.json()


async def test_assets_and_quotes(trader_factory: TraderFactory) -> None:
    t = await trader_factory(cash=0, open_account=False)
    found = (await t.get("/assets", q="bitcoin"))["items"]
    assert [a["symbol"] for a in found] == ["BTC/USD"]
    assert len((await t.get("/assets"))["items"]) >= 10
    q = await t.get("/quotes/aapl")
    assert Decimal(q["ask"]) > Decimal(q["bid"])
    r = await t.http.get("/api/v1/trading/quotes/NOPE", headers=t.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "ASSET_NOT_FOUND"
    r = await t.http.put(
        "/api/v1/trading/sandbox/quotes/AAPL", json={"bid": "10", "ask": "9"}, headers=t.headers
    )
    assert r.status_code == 422
