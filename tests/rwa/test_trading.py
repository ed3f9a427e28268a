"""The secondary market through HTTP: limit orders matched by the exchange's engine (price-time
priority, at the resting order's price), holds of cash and shares, cancels, IOC, self-trade,
the order book, trades, candles, ownership and cost basis, trading hours and halts."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from tests.rwa.conftest import RwaEnvFactory


async def test_orders_match_by_price_then_time_and_move_cash_and_shares(
    rwa_env: RwaEnvFactory,
) -> None:
    env = await rwa_env()
    s1 = await env.investor(cash=100_000)
    s2 = await env.investor(cash=100_000)
    buyer = await env.investor(cash=200_000)
    asset = await env.trading_asset([(s1, 60), (s2, 40)], price_cents=1000)
    aid = asset["id"]
    # two asks at 1200 (s1 first, then s2) and one at 1100 (s2)
    a1 = await env.order(s1, aid, "sell", 1200, 30)
    a2 = await env.order(s2, aid, "sell", 1200, 20)
    a3 = await env.order(s2, aid, "sell", 1100, 10)
    assert all(r.status_code == 201 for r in (a1, a2, a3)), [a1.text, a2.text, a3.text]
    assert await env.shares(s1, aid) == (60, 30, 60_000)
    book = await env.get(f"/api/v1/rwa/assets/{aid}/orderbook", buyer)
    assert book["asks"] == [
        {"price_cents": 1100, "shares": 10, "orders": 1},
        {"price_cents": 1200, "shares": 50, "orders": 2},
    ]
    assert book["bids"] == []
    # a buy of 25 at 1250: 10 @1100 (s2), then 15 @1200 from s1 (earlier than s2's)
    r = await env.order(buyer, aid, "buy", 1250, 25)
    assert r.status_code == 201, r.text
    taken = r.json()
    assert taken["status"] == "executed" and taken["filled_cents"] == 10 * 1100 + 15 * 1200
    assert await env.balance(buyer) == {
        "available": 200_000 - 29_000,
        "held": 0,
        "pending_deposits": 0,
        "withdrawable": 200_000 - 29_000,
        "total": 200_000 - 29_000,
        "currency": "USD",
    }
    assert await env.shares(buyer, aid) == (25, 0, 29_000)
    assert (await env.balance(s1))["available"] == 100_000 + 15 * 1200
    assert (await env.balance(s2))["available"] == 100_000 + 10 * 1100
    # s1 sold 15 of 60 shares: a quarter of its basis goes
    assert await env.shares(s1, aid) == (45, 15, 45_000)
    order = await env.get(f"/api/v1/rwa/orders/{a1.json()['id']}", s1)
    assert (order["remaining"], order["status"]) == (15, "resting")
    # a resting bid; then a sell crossing it trades at the bid's price (the resting order's)
    bid = await env.order(buyer, aid, "buy", 1050, 10)
    assert bid.json()["status"] == "resting"
    assert (await env.balance(buyer))["held"] == 10_500
    hit = await env.order(s2, aid, "sell", 1000, 4)
    assert hit.json()["status"] == "executed" and hit.json()["filled_cents"] == 4 * 1050
    assert (await env.balance(buyer))["held"] == 6 * 1050
    trades = await env.get(f"/api/v1/rwa/assets/{aid}/trades?limit=2", buyer)
    assert [(t["price_cents"], t["quantity"], t["taker_side"]) for t in trades["items"]] == [
        (1050, 4, "sell"),
        (1200, 15, "buy"),
    ]
    rest = await env.get(f"/api/v1/rwa/assets/{aid}/trades?cursor={trades['cursor']}", buyer)
    assert [t["quantity"] for t in rest["items"]] == [10] and rest["cursor"] is None
    candles = await env.get(f"/api/v1/rwa/assets/{aid}/candles?interval=1m", buyer)
    assert sum(c["volume"] for c in candles["items"]) == 29
    last = candles["items"][-1]
    assert last["close"] == 1050 and last["high"] == 1200 and last["low"] == 1050
    detail = await env.get(f"/api/v1/rwa/assets/{aid}", buyer)
    assert detail["last_price_cents"] == 1050
    listed = await env.get("/api/v1/rwa/listings", buyer)
    assert [(i["kind"], i["asset"]["id"]) for i in listed["items"]] == [("trading", aid)]
    # decrease: 2 of the 6 left come off, the order keeps its place; then cancel the rest
    r = await env.http.post(
        f"/api/v1/rwa/orders/{bid.json()['id']}/decrease",
        json={"reduce_by": 2},
        headers=buyer.headers,
    )
    assert r.status_code == 200 and r.json()["remaining"] == 4, r.text
    assert (await env.balance(buyer))["held"] == 4 * 1050
    r = await env.http.post(
        f"/api/v1/rwa/orders/{a1.json()['id']}/decrease",
        json={"reduce_by": 5},
        headers=s1.headers,
    )
    assert r.json()["remaining"] == 10 and await env.shares(s1, aid) == (45, 10, 45_000)
    bad = await env.http.post(
        f"/api/v1/rwa/orders/{bid.json()['id']}/decrease",
        json={"reduce_by": 0},
        headers=buyer.headers,
    )
    assert bad.status_code == 422
    # cancel: the rest of the bid's cash comes back; twice is a conflict
    r = await env.http.delete(f"/api/v1/rwa/orders/{bid.json()['id']}", headers=buyer.headers)
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert (await env.balance(buyer))["held"] == 0
    again = await env.http.delete(f"/api/v1/rwa/orders/{bid.json()['id']}", headers=buyer.headers)
    assert again.status_code == 409
    theirs = await env.http.delete(f"/api/v1/rwa/orders/{a1.json()['id']}", headers=buyer.headers)
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "ORDER_NOT_FOUND"
    mine = await env.get(f"/api/v1/rwa/orders?asset_id={aid}&status=resting", s1)
    assert [o["id"] for o in mine["items"]] == [a1.json()["id"]]
    async with env.maker() as s:
        outstanding = await rwa_shares_outstanding(s, asset["symbol"])
    assert outstanding == 100
    assert await env.account("rwa.orders", asset["symbol"]) == 10 + 20  # s1 10, s2 20
    await env.assert_books()


async def rwa_shares_outstanding(session: object, symbol: str) -> int:
    from pull.rwa import service

    return await service.shares_outstanding(session=session, currency=symbol)  # type: ignore[arg-type]


async def test_refusals_ioc_self_trade_and_purchase(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env()
    seller = await env.investor(cash=0)
    buyer = await env.investor(cash=10_000)
    asset = await env.trading_asset([(seller, 10)], price_cents=500)
    aid = asset["id"]
    over = await env.order(seller, aid, "sell", 600, 11)
    assert over.status_code == 409 and over.json()["error"]["code"] == "INSUFFICIENT_SHARES"
    broke = await env.order(buyer, aid, "buy", 600, 17)
    assert broke.status_code == 409 and broke.json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    for bad in (
        {"price_cents": 0},
        {"quantity": 0},
        {"quantity": 1.5},
        {"side": "short"},
        {"time_in_force": "fok"},
        {"asset_id": "x"},
    ):
        body = {"asset_id": aid, "side": "buy", "price_cents": 1, "quantity": 1, **bad}
        r = await env.http.post(
            "/api/v1/rwa/orders",
            json=body,
            headers={**buyer.headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 422, (bad, r.text)
    missing = await env.order(buyer, str(uuid.uuid4()), "buy", 1, 1)
    assert missing.status_code == 404
    draft = await env.create_asset()
    halted = await env.order(buyer, draft["id"], "buy", 1, 1)
    assert halted.status_code == 409 and halted.json()["error"]["code"] == "TRADING_HALTED"
    ask = await env.order(seller, aid, "sell", 600, 5)
    key = str(uuid.uuid4())
    ioc = await env.order(buyer, aid, "buy", 650, 8, tif="ioc", key=key)
    body = ioc.json()
    assert (body["status"], body["remaining"], body["cancel_reason"]) == (
        "canceled",
        3,
        "immediate_or_cancel",
    )
    replay = await env.order(buyer, aid, "buy", 650, 8, tif="ioc", key=key)
    assert replay.json() == body and replay.headers["Idempotent-Replayed"] == "true"
    assert (await env.balance(buyer))["available"] == 10_000 - 5 * 600
    assert (await env.balance(buyer))["held"] == 0
    assert ask.json()["status"] == "resting"
    # self-trade: the taker stops at its own resting order
    await env.order(seller, aid, "sell", 700, 5)
    cross = await env.order(seller, aid, "buy", 800, 1)
    assert cross.status_code == 201, cross.text
    assert (cross.json()["status"], cross.json()["cancel_reason"]) == ("canceled", "self_trade")
    # purchase on a trading asset is an IOC buy up to max_price_cents
    r = await env.http.post(
        "/api/v1/rwa/purchase",
        json={"asset_id": aid, "shares": 2},
        headers={**buyer.headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "PRICE_REQUIRED"
    r = await env.http.post(
        "/api/v1/rwa/purchase",
        json={"asset_id": aid, "shares": 2, "max_price_cents": 700},
        headers={**buyer.headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "order" and r.json()["order"]["filled_cents"] == 1400
    await env.assert_books()


async def test_trading_hours(rwa_env: RwaEnvFactory) -> None:
    from pull.rwa.service import market_open

    spec = "mon-fri 09:30-16:00 America/New_York"
    monday_10am_ny = dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC)
    assert market_open(spec, monday_10am_ny)
    assert not market_open(spec, monday_10am_ny.replace(hour=22))
    assert not market_open(spec, monday_10am_ny - dt.timedelta(days=1))  # Sunday
    assert market_open("", monday_10am_ny)
    # a window that is closed now, whatever the time: one minute long, an hour behind us
    ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    closed = f"mon-sun {ago:%H}:00-{ago:%H}:01 UTC"
    env = await rwa_env(RWA_TRADING_HOURS=closed)
    seller = await env.investor()
    asset = await env.trading_asset([(seller, 5)])
    r = await env.order(seller, asset["id"], "sell", 100, 1)
    assert r.status_code == 409 and r.json()["error"]["code"] == "MARKET_CLOSED"


async def test_concurrent_orders_on_one_book_keep_the_books(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env()
    sellers = [await env.investor(cash=0) for _ in range(4)]
    buyers = [await env.investor(cash=50_000) for _ in range(4)]
    asset = await env.trading_asset([(s, 25) for s in sellers], price_cents=100)
    aid = asset["id"]
    orders = [env.order(s, aid, "sell", 100 + i % 5, 5) for i, s in enumerate(sellers * 5)]
    orders += [env.order(b, aid, "buy", 100 + i % 5, 5) for i, b in enumerate(buyers * 5)]
    responses = await asyncio.gather(*orders)
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    book = await env.get(f"/api/v1/rwa/assets/{aid}/orderbook", sellers[0])
    if book["bids"] and book["asks"]:
        assert book["bids"][0]["price_cents"] < book["asks"][0]["price_cents"]  # never crossed
    total = 0
    for user in sellers + buyers:
        total += (await env.shares(user, aid))[0]
    assert total == 100
    await env.assert_books()
