"""`/api/v1/stream` (WebSocket and Server-Sent Events) against real `pull api` processes: the
caller's own events only, market channels whose book (snapshot + deltas by seq) equals the
REST book at the same seq, events pushed by other modules, and the per-connection limits."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
import websockets
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pull.realtime.publish import publish_user_event
from tests.conftest import Services, start_api_process, stop_process
from tests.exchange.conftest import MarketFactory
from tests.exchange.kalshi_support import PREFIX
from tests.realtime.conftest import kalshi_user

STREAM = "/api/v1/stream"


def url_of(http_url: str, query: str = "") -> str:
    return http_url.replace("http://", "ws://") + STREAM + query


async def recv(ws: Any, timeout: float = 20) -> dict[str, Any]:
    value = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert isinstance(value, dict)
    return value


async def until(ws: Any, kind: str, timeout: float = 20) -> dict[str, Any]:
    while True:
        msg = await recv(ws, timeout)
        if msg["type"] == kind:
            return msg


async def test_own_events_market_book_and_scoping(
    two_apis: list[str],
    client: httpx.AsyncClient,
    trader: Any,
    market_factory: MarketFactory,
    redis: Redis,
) -> None:
    ticker = await market_factory()
    alice, bob = await trader(cents=1_000_000), await trader(cents=1_000_000)
    with pytest.raises(InvalidStatus) as anon:
        await websockets.connect(url_of(two_apis[0]), open_timeout=20)
    assert anon.value.response.status_code == 401

    a = await websockets.connect(
        url_of(two_apis[0], f"?markets={ticker}"), additional_headers=alice.headers
    )
    b = await websockets.connect(url_of(two_apis[1]), additional_headers=bob.headers)
    try:
        hello = await recv(a)
        assert hello == {"type": "hello", "data": {"user_id": str(alice.id), "channels": ["user"]}}
        assert (await recv(a))["type"] == "subscribed"
        snap = await recv(a)
        assert (snap["type"], snap["ticker"], snap["data"]["yes"]) == ("book", ticker, [])
        await until(b, "hello")
        # bob may not listen to alice
        await b.send(orjson.dumps({"op": "subscribe", "channel": f"user:{alice.id}"}).decode())
        assert (await recv(b))["data"]["code"] == "FORBIDDEN"

        # alice rests, bob crosses her on the other process
        r = await client.post(
            "/api/v1/orders",
            json={"ticker": ticker, "side": "yes", "action": "buy", "count": 5, "yes_price": 45},
            headers=alice.headers,
        )
        order_id = r.json()["order_id"]
        r = await client.post(
            "/api/v1/orders",
            json={"ticker": ticker, "side": "no", "action": "buy", "count": 2, "no_price": 55},
            headers=bob.headers,
        )
        assert r.status_code == 201, r.text
        seen: dict[str, list[dict[str, Any]]] = {}
        book: dict[int, int] = {}
        seq = snap["seq"]
        while "position" not in seen or seq < snap["seq"] + 2:
            msg = await recv(a)
            seen.setdefault(msg["type"], []).append(msg)
            if msg["type"] == "book_delta":
                # one message per fan-out tick: it covers from_seq..seq, never skipping
                assert msg["from_seq"] == seq + 1 and msg["seq"] >= msg["from_seq"]
                seq = msg["seq"]
                for c in msg["data"]:
                    if c["side"] == "yes":
                        book[c["price"]] = c["count"]
        assert {o["data"]["order_id"] for o in seen["order"]} == {order_id}
        fill = seen["fill"][0]["data"]
        assert (fill["count"], fill["is_taker"], fill["order_id"]) == (2, False, order_id)
        assert seen["position"][-1]["data"]["position"] == 2
        async with httpx.AsyncClient(base_url=two_apis[1]) as http:
            rest = await http.get(f"{PREFIX}/markets/{ticker}/orderbook")
        assert int(rest.headers["X-Pull-Book-Seq"]) == seq
        assert rest.json()["orderbook"]["yes"] == [[p, c] for p, c in sorted(book.items()) if c]

        # bob's stream had his own order and fill, none of alice's
        got_b = [await recv(b) for _ in range(2)]
        assert {m["type"] for m in got_b} <= {"order", "fill", "position"}
        assert all(m["data"].get("order_id") != order_id for m in got_b)

        # any module's push reaches the user's connections (notifications use this)
        await publish_user_event(redis, user_id=alice.id, type="notification", data={"title": "hi"})
        assert (await until(a, "notification"))["data"] == {"title": "hi"}
    finally:
        await a.close()
        await b.close()


async def test_server_sent_events(two_apis: list[str], trader: Any, redis: Redis) -> None:
    alice = await trader(cents=0)
    async with httpx.AsyncClient(base_url=two_apis[0], timeout=20) as http:
        r = await http.get(STREAM)
        assert r.status_code == 401
        token = alice.headers["Authorization"].split()[1]
        async with http.stream("GET", STREAM, params={"access_token": token}) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            lines = resp.aiter_lines()
            assert await anext(lines) == "event: hello"
            assert orjson.loads((await anext(lines))[6:])["data"]["user_id"] == str(alice.id)
            await publish_user_event(
                redis, user_id=alice.id, type="kyc.approved", data={"tier": "standard"}
            )
            async for line in lines:
                if line.startswith("data: ") and "kyc.approved" in line:
                    assert orjson.loads(line[6:])["data"] == {"tier": "standard"}
                    break


async def test_limits_close_abusive_connections(
    services: Services, client: httpx.AsyncClient, trader: Any
) -> None:
    proc, url = start_api_process(
        services,
        STREAM_COMMANDS_PER_SECOND="1",
        STREAM_MAX_MESSAGE_BYTES="512",
        STREAM_IDLE_SECONDS="2",
    )
    try:
        alice = await trader(cents=0)
        kalshi = url.replace("http://", "ws://")
        async with websockets.connect(kalshi + STREAM, additional_headers=alice.headers) as ws:
            await until(ws, "hello")
            for _ in range(4):
                await ws.send('{"op": "subscribe", "channel": "market", "ticker": "X"}')
            codes = set()
            for _ in range(4):
                codes.add((await recv(ws))["data"]["code"])
            assert "RATE_LIMITED" in codes
            await ws.send("x" * 2000)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        # a Kalshi socket that subscribes to nothing is closed as idle
        who = await kalshi_user(client, trader)
        async with websockets.connect(
            kalshi + "/trade-api/ws/v2", additional_headers=who.ws_headers()
        ) as ws:
            with pytest.raises(ConnectionClosed):
                await recv(ws, 30)
    finally:
        stop_process(proc)


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


async def test_each_tick_s_fan_out_is_timed(
    two_apis: list[str], client: httpx.AsyncClient, trader: Any, market_factory: MarketFactory
) -> None:
    """`stream_fanout_seconds` (the alert PullStreamFanoutSlow and bench/stream.py read it)
    observes every tick that sent a market's batch, in the process holding the socket."""
    ticker = await market_factory()
    alice = await trader(cents=1_000_000)
    api = two_apis[1]
    async with httpx.AsyncClient(base_url=api, timeout=20) as http:
        before = (await http.get("/metrics")).text
        ws = await websockets.connect(
            url_of(api, f"?markets={ticker}"), additional_headers=alice.headers
        )
        try:
            await until(ws, "book")
            r = await client.post(
                "/api/v1/orders",
                json={
                    "ticker": ticker,
                    "side": "yes",
                    "action": "buy",
                    "count": 1,
                    "yes_price": 40,
                },
                headers=alice.headers,
            )
            assert r.status_code == 201, r.text
            await until(ws, "book_delta")
        finally:
            await ws.close()
        after = (await http.get("/metrics")).text
    name = "stream_fanout_seconds_count"
    assert _metric(after, name) >= _metric(before, name) + 1
    assert _metric(after, "stream_fanout_seconds_sum") > _metric(
        before, "stream_fanout_seconds_sum"
    )
