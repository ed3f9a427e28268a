"""Kalshi's WebSocket API v2 against real `pull api` processes, with a client written with the
`websockets` library that follows Kalshi's protocol (no PULL code on the client side)."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import Services, _spawn, stop_process, wait_http
from tests.exchange.conftest import MarketFactory
from tests.exchange.kalshi_support import PREFIX
from tests.realtime.conftest import (
    KalshiBook,
    KalshiUser,
    command,
    connect,
    kalshi_user,
    recv,
    recv_until,
    rest_levels,
    ws_url,
)

BOOK = {"channels": ["orderbook_delta"]}


async def rest_book(url: str, ticker: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        r = await http.get(f"{PREFIX}/markets/{ticker}/orderbook")
        assert r.status_code == 200, r.text
        return int(r.headers["X-Pull-Book-Seq"]), rest_levels(r.json())


async def place(
    http: httpx.AsyncClient, who: KalshiUser, ticker: str, side: str, price: int, count: int
) -> dict[str, Any]:
    path = f"{PREFIX}/portfolio/orders"
    body = {
        "ticker": ticker,
        "side": side,
        "action": "buy",
        "count": count,
        "type": "limit",
        f"{side}_price": price,
    }
    r = await http.post(path, json=body, headers=who.rest_headers("POST", path))
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()["order"]
    return order


async def cancel(http: httpx.AsyncClient, who: KalshiUser, order_id: str) -> None:
    path = f"{PREFIX}/portfolio/orders/{order_id}"
    r = await http.delete(path, headers=who.rest_headers("DELETE", path))
    assert r.status_code in (200, 409), r.text  # 409: filled meanwhile


async def test_handshake_commands_and_error_codes(
    two_apis: list[str], client: httpx.AsyncClient, trader: Any, market_factory: MarketFactory
) -> None:
    url = two_apis[0]
    ticker = await market_factory()
    alice = await kalshi_user(client, trader)

    with pytest.raises(InvalidStatus) as unsigned:
        await websockets.connect(ws_url(url), open_timeout=20)
    assert unsigned.value.response.status_code == 401
    bad = alice.ws_headers()
    bad["KALSHI-ACCESS-SIGNATURE"] = "AAAA" + bad["KALSHI-ACCESS-SIGNATURE"][4:]
    with pytest.raises(InvalidStatus) as forged:
        await websockets.connect(ws_url(url), additional_headers=bad, open_timeout=20)
    assert forged.value.response.status_code == 401

    async with await connect(url, alice) as ws:
        cases: list[tuple[str, dict[str, Any] | None, int]] = [
            ("subscribe", None, 2),
            ("subscribe", {}, 3),
            ("subscribe", {"channels": ["nope"]}, 8),
            ("subscribe", {"channels": ["communications"]}, 8),
            ("subscribe", {"channels": ["orderbook_delta"]}, 14),
            ("subscribe", {"channels": ["orderbook_delta"], "market_ticker": "NOPE-1"}, 16),
            ("explode", {}, 5),
            ("unsubscribe", {}, 4),
            ("unsubscribe", {"sids": [999]}, 7),
            ("update_subscription", {"sids": [1, 2], "action": "add_markets"}, 12),
            ("update_subscription", {"sid": 999}, 15),
            ("update_subscription", {"sid": 999, "action": "merge"}, 13),
        ]
        for i, (cmd, params, code) in enumerate(cases, start=10):
            await command(ws, i, cmd, params)
            msg = await recv(ws)
            assert (msg["type"], msg["id"], msg["msg"]["code"]) == ("error", i, code), msg
        await ws.send("not json")
        assert (await recv(ws))["msg"]["code"] == 1

        await command(ws, 1, "subscribe", BOOK | {"market_ticker": ticker})
        assert await recv(ws) == {
            "id": 1,
            "type": "subscribed",
            "msg": {"channel": "orderbook_delta", "sid": 1},
        }
        snap = await recv(ws)
        assert (snap["type"], snap["sid"], snap["seq"]) == ("orderbook_snapshot", 1, 1)
        assert snap["msg"]["market_ticker"] == ticker and "yes_dollars_fp" not in snap["msg"]

        await command(ws, 2, "subscribe", {"channels": ["fill", "user_orders", "ticker"]})
        got = [await recv(ws) for _ in range(3)]
        assert [(m["msg"]["channel"], m["msg"]["sid"]) for m in got] == [
            ("fill", 2),
            ("user_orders", 3),
            ("ticker", 4),
        ]
        await command(ws, 3, "list_subscriptions")
        listed = await recv(ws)
        assert listed["type"] == "ok" and [s["channel"] for s in listed["msg"]] == [
            "orderbook_delta",
            "fill",
            "user_orders",
            "ticker",
        ]
        other = await market_factory()
        await command(
            ws,
            4,
            "update_subscription",
            {"sid": 1, "action": "add_markets", "market_tickers": [other]},
        )
        assert (await recv(ws))["msg"]["market_ticker"] == other  # its snapshot comes first
        ok = await recv(ws)
        assert (ok["type"], ok["id"], ok["sid"], ok["msg"]["market_tickers"]) == (
            "ok",
            4,
            1,
            sorted([ticker, other]),
        )
        await command(
            ws,
            5,
            "update_subscription",
            {"sids": [1], "action": "delete_markets", "market_ticker": other},
        )
        assert (await recv(ws))["msg"]["market_tickers"] == [ticker]
        await command(ws, 6, "unsubscribe", {"sids": [4]})
        assert (await recv(ws)) == {"id": 6, "sid": 4, "seq": 0, "type": "unsubscribed"}


async def test_busy_book_across_two_processes_equals_rest(
    two_apis: list[str], client: httpx.AsyncClient, trader: Any, market_factory: MarketFactory
) -> None:
    """Two API processes take orders; a client on each keeps a local book from Kalshi's
    snapshot + deltas. At each pause in the flow both equal the REST book, and the seq of
    every subscription never skips. The client also sees its own fills and order updates."""
    ticker = await market_factory()
    alice, bob = await kalshi_user(client, trader), await kalshi_user(client, trader)
    books = [KalshiBook(), KalshiBook()]
    mine: dict[str, list[dict[str, Any]]] = {"fill": [], "user_order": []}
    stop = asyncio.Event()
    followers: list[asyncio.Task[None]] = []

    async def follow(i: int, ws: Any) -> None:
        while not stop.is_set():
            try:
                msg = await recv(ws, 0.5)
            except TimeoutError:
                continue
            books[i].apply(msg)
            if i == 0 and msg["type"] in mine:
                mine[msg["type"]].append(msg["msg"])

    rng = random.Random(14)
    socks = [await connect(two_apis[0], alice), await connect(two_apis[1], bob)]
    try:
        for ws in socks:
            await command(ws, 1, "subscribe", BOOK | {"market_ticker": ticker})
            await recv_until(ws, "subscribed")
        await command(socks[0], 2, "subscribe", {"channels": ["fill", "user_orders"]})
        followers.extend(asyncio.create_task(follow(i, ws)) for i, ws in enumerate(socks))
        https = [httpx.AsyncClient(base_url=u, timeout=30) for u in two_apis]
        resting: list[tuple[KalshiUser, str]] = []
        alice_orders: set[str] = set()
        for _round in range(3):

            async def one(n: int) -> None:
                who = alice if n % 2 else bob
                http = https[rng.randrange(2)]
                if resting and rng.random() < 0.25:
                    owner, oid = resting.pop(rng.randrange(len(resting)))
                    await cancel(http, owner, oid)
                    return
                side = rng.choice(["yes", "no"])
                order = await place(http, who, ticker, side, rng.randint(40, 60), rng.randint(1, 5))
                if who is alice:
                    alice_orders.add(order["order_id"])
                if order["status"] == "resting":
                    resting.append((who, order["order_id"]))

            await asyncio.gather(*(one(n) for n in range(24)))
            seq, rest = await rest_book(two_apis[rng.randrange(2)], ticker)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(b.levels() != rest for b in books):
                await asyncio.sleep(0.1)
            assert [b.levels() for b in books] == [rest, rest], f"at book seq {seq}"
        for h in https:
            await h.aclose()
    finally:
        stop.set()
        await asyncio.gather(*followers, return_exceptions=True)
        for ws in socks:
            await ws.close()
    assert seq > 0 and all(b.snapshots == 1 for b in books)

    # alice's own fills and order updates arrived, and only hers
    async with httpx.AsyncClient(base_url=two_apis[0], timeout=20) as http:
        path = f"{PREFIX}/portfolio/fills"
        r = await http.get(
            path, params={"ticker": ticker, "limit": 200}, headers=alice.rest_headers("GET", path)
        )
        fills = r.json()["fills"]
    assert sorted(str(f["trade_id"]) for f in fills) == sorted(f["trade_id"] for f in mine["fill"])
    assert {o["order_id"] for o in mine["user_order"]} == alice_orders
    assert {o["user_id"] for o in mine["user_order"]} == {str(alice.id)}


async def test_client_reconnects_after_server_restart(
    services: Services, client: httpx.AsyncClient, trader: Any, market_factory: MarketFactory
) -> None:
    from pull import devstack

    port = devstack.free_port()
    env = services.env(PORT=str(port), HOST="127.0.0.1", RATE_LIMIT_ENABLED="false")
    url = f"http://127.0.0.1:{port}"

    def start() -> Any:
        proc = _spawn(["api"], env, services.data_dir / f"api-restart-{port}.log")
        wait_http(f"{url}/health/live", timeout=90, proc=proc)
        return proc

    ticker = await market_factory()
    alice = await kalshi_user(client, trader)
    proc = start()
    try:
        ws = await connect(url, alice)
        await command(ws, 1, "subscribe", BOOK | {"market_ticker": ticker})
        await recv_until(ws, "orderbook_snapshot")
        stop_process(proc)
        with pytest.raises(ConnectionClosed):
            while True:
                await recv(ws, 30)
        # an order while the server is down: the new subscription's snapshot must show it
        r = await client.post(
            "/api/v1/orders",
            json={"ticker": ticker, "side": "yes", "action": "buy", "count": 7, "yes_price": 33},
            headers=alice.user.headers,
        )
        assert r.status_code == 201, r.text
        proc = start()
        # reconnect as Kalshi's clients do: re-sign, re-subscribe, take the fresh snapshot
        async for ws in websockets.connect(
            ws_url(url), additional_headers=alice.ws_headers(), open_timeout=20
        ):
            try:
                await command(ws, 1, "subscribe", BOOK | {"market_ticker": ticker})
                snap = await recv_until(ws, "orderbook_snapshot")
                break
            except ConnectionClosed:
                continue
        assert snap["msg"]["yes_dollars_fp"] == [["0.3300", "7.00"]]
        book = KalshiBook()
        book.apply(snap)
        await ws.close()
        assert book.levels() == (await rest_book(url, ticker))[1]
    finally:
        stop_process(proc)
