"""The exchange's HTTP API: admin market structure, orders, portfolio and market data."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.exchange.conftest import check_invariants


async def _admin_market(client: httpx.AsyncClient, admin: Any, ticker: str) -> None:
    h = admin.headers
    r = await client.post(
        "/api/admin/series",
        json={"ticker": "KXTEST", "title": "Tests", "category": "Science"},
        headers=h,
    )
    assert r.status_code in (201, 409), r.text
    r = await client.post(
        "/api/admin/events",
        json={"ticker": "KXTEST-26", "series_ticker": "KXTEST", "title": "Test event"},
        headers=h,
    )
    assert r.status_code in (201, 409), r.text
    now = dt.datetime.now(dt.UTC)
    r = await client.post(
        "/api/admin/markets",
        json={
            "ticker": ticker,
            "event_ticker": "KXTEST-26",
            "title": "Will the test pass?",
            "rules_primary": "Resolves YES if it does.",
            "open_time": (now - dt.timedelta(minutes=1)).isoformat(),
            "close_time": (now + dt.timedelta(days=1)).isoformat(),
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "initialized" and r.json()["category"] == "Science"
    r = await client.post(f"/api/admin/markets/{ticker}/open", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "open", r.text


async def test_trading_over_http(
    client: httpx.AsyncClient,
    user_factory: Any,
    trader: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    admin = await user_factory(admin=True)
    ticker = "KXTEST-26-A"
    await _admin_market(client, admin, ticker)
    a, b = await trader(), await trader()
    r = await client.post(
        "/api/v1/orders",
        json={"ticker": ticker, "side": "yes", "action": "buy", "count": 10, "yes_price": 55},
        headers={**a.headers, "Idempotency-Key": "first-order"},
    )
    assert r.status_code == 201, r.text
    assert r.headers["x-ratelimit-limit"]  # the trading limit's headers stay on the answer
    order = r.json()
    assert order["status"] == "resting" and order["no_price"] == 45
    again = await client.post(
        "/api/v1/orders",
        json={"ticker": ticker, "side": "yes", "action": "buy", "count": 10, "yes_price": 55},
        headers={**a.headers, "Idempotency-Key": "first-order"},
    )
    assert again.json()["order_id"] == order["order_id"]

    book = (await client.get(f"/api/v1/markets/{ticker}/orderbook", headers=b.headers)).json()
    assert book == {"ticker": ticker, "yes": [[55, 10]], "no": []}
    m = (await client.get(f"/api/v1/markets/{ticker}", headers=b.headers)).json()
    assert (m["yes_bid"], m["no_ask"], m["yes_ask"], m["liquidity"]) == (55, 45, None, 550)

    r = await client.post(
        "/api/v1/orders",
        json={
            "ticker": ticker,
            "side": "no",
            "action": "buy",
            "count": 4,
            "type": "market",
            "time_in_force": "immediate_or_cancel",
        },
        headers=b.headers,
    )
    assert r.status_code == 201 and r.json()["fill_count"] == 4, r.text
    trades = (await client.get(f"/api/v1/markets/{ticker}/trades", headers=b.headers)).json()
    assert [(t["count"], t["yes_price"], t["taker_side"]) for t in trades["items"]] == [
        (4, 55, "no")
    ]
    pos = (await client.get("/api/v1/positions", headers=a.headers)).json()["items"]
    assert pos[0]["position"] == 4 and pos[0]["resting_order_value"] == 330
    fills = (await client.get("/api/v1/fills", headers=b.headers)).json()["items"]
    assert fills[0]["is_taker"] and fills[0]["no_price"] == 45
    now = int(time.time())
    candles = (
        await client.get(
            f"/api/v1/markets/{ticker}/candlesticks",
            params={"start_ts": now - 3600, "end_ts": now + 60, "period_interval": 60},
            headers=a.headers,
        )
    ).json()["candlesticks"]
    assert candles and candles[-1]["price"]["close"] == 55 and candles[-1]["volume"] == 4
    assert candles[-1]["yes_bid"]["close"] == 55

    oid = order["order_id"]
    r = await client.post(
        f"/api/v1/orders/{oid}/decrease", json={"reduce_to": 2}, headers=a.headers
    )
    assert r.status_code == 200 and r.json()["remaining_count"] == 2, r.text
    r = await client.post(
        f"/api/v1/orders/{oid}/amend", json={"yes_price": 50, "count": 8}, headers=a.headers
    )
    assert r.status_code == 200 and r.json()["remaining_count"] == 4, r.text
    r = await client.delete(f"/api/v1/orders/{oid}", headers=a.headers)
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    r = await client.delete(f"/api/v1/orders/{oid}", headers=a.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "ORDER_NOT_RESTING"
    r = await client.get(f"/api/v1/orders/{oid}", headers=b.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "ORDER_NOT_FOUND"

    batch = await client.post(
        "/api/v1/orders/batch",
        json={
            "orders": [
                {"ticker": ticker, "side": "yes", "action": "buy", "count": 1, "yes_price": 10},
                {"ticker": ticker, "side": "yes", "action": "buy", "count": 1, "yes_price": 0},
                {"ticker": "NOPE", "side": "yes", "action": "buy", "count": 1, "yes_price": 10},
            ]
        },
        headers=a.headers,
    )
    assert batch.status_code == 201, batch.text
    items = batch.json()["orders"]
    assert items[0]["order"]["status"] == "resting"
    assert items[1]["error"]["code"] == "INVALID_PRICE"
    assert items[2]["error"]["code"] == "MARKET_NOT_FOUND"
    r = await client.request(
        "DELETE",
        "/api/v1/orders/batch",
        json={"ids": [items[0]["order"]["order_id"], str(uuid.uuid4())]},
        headers=a.headers,
    )
    codes = [(i["order"] or {}).get("status") or i["error"]["code"] for i in r.json()["orders"]]
    assert codes == ["canceled", "ORDER_NOT_FOUND"]
    async with sessionmaker() as s:
        await check_invariants(s, [ticker])


async def test_precise_errors_never_500(
    client: httpx.AsyncClient,
    user_factory: Any,
    trader: Any,
    market_factory: Any,
) -> None:
    ticker = await market_factory()
    a = await trader()
    poor = await trader(cents=0)
    nobody = await user_factory()
    base = {"ticker": ticker, "side": "yes", "action": "buy", "count": 1, "yes_price": 50}
    cases: list[tuple[Any, dict[str, Any], int, str]] = [
        (a, {**base, "yes_price": 100}, 400, "INVALID_PRICE"),
        (a, {**base, "yes_price": None}, 400, "INVALID_PRICE"),
        (a, {**base, "count": 0}, 422, "VALIDATION_ERROR"),
        (a, {**base, "side": "maybe"}, 422, "VALIDATION_ERROR"),
        (a, {**base, "ticker": "NO-SUCH"}, 404, "MARKET_NOT_FOUND"),
        (a, {**base, "action": "sell"}, 409, "INSUFFICIENT_POSITION"),
        (a, {**base, "client_order_id": "x" * 65}, 422, "VALIDATION_ERROR"),
        (poor, base, 409, "INSUFFICIENT_FUNDS"),
        (nobody, base, 403, "KYC_REQUIRED"),
        (
            a,
            {**base, "post_only": True, "time_in_force": "immediate_or_cancel"},
            400,
            "INVALID_ORDER",
        ),
        (a, {**base, "action": "sell", "buy_max_cost": 10}, 400, "INVALID_ORDER"),
    ]
    for user, body, code, err in cases:
        r = await client.post("/api/v1/orders", json=body, headers=user.headers)
        assert (r.status_code, r.json()["error"]["code"]) == (code, err), (body, r.text)
    r = await client.post("/api/v1/orders", json=base)
    assert r.status_code == 401
    r = await client.post("/api/admin/markets/" + ticker + "/pause", headers=a.headers)
    assert r.status_code == 403
    admin = await user_factory(admin=True)
    r = await client.post(f"/api/admin/markets/{ticker}/pause", headers=admin.headers)
    assert r.json()["status"] == "paused"
    r = await client.post("/api/v1/orders", json=base, headers=a.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "MARKET_PAUSED")
    r = await client.post(f"/api/admin/markets/{ticker}/pause", headers=admin.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "INVALID_MARKET_TRANSITION")
    r = await client.post(f"/api/admin/markets/{ticker}/close", headers=admin.headers)
    r = await client.post("/api/v1/orders", json=base, headers=a.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "MARKET_CLOSED")
    r = await client.get("/api/v1/orders/not-a-uuid", headers=a.headers)
    assert r.status_code == 422
    r = await client.get("/api/v1/orders", params={"cursor": "%%%"}, headers=a.headers)
    assert r.status_code == 400


async def test_market_listing_filters_and_pages(
    client: httpx.AsyncClient, user_factory: Any, market_factory: Any
) -> None:
    for i in range(3):
        await market_factory(f"KXLIST-{i}")
    await market_factory("KXLIST-CLOSED", open_market=False)
    u = await user_factory()
    r = await client.get(
        "/api/v1/markets", params={"status": "open", "limit": 2}, headers=u.headers
    )
    page = r.json()
    assert [m["ticker"] for m in page["items"]] == ["KXLIST-0", "KXLIST-1"]
    r = await client.get(
        "/api/v1/markets", params={"status": "open", "cursor": page["cursor"]}, headers=u.headers
    )
    assert [m["ticker"] for m in r.json()["items"]] == ["KXLIST-2"]
    r = await client.get("/api/v1/markets", params={"q": "closed"}, headers=u.headers)
    assert [m["ticker"] for m in r.json()["items"]] == ["KXLIST-CLOSED"]
    r = await client.get("/api/v1/events", headers=u.headers)
    assert len(r.json()["items"]) == 4
