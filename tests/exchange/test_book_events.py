"""Book events: every committed book change is one `exchange.book` entry on the market stream,
seq 1, 2, 3... per market with nothing skipped, and replaying the changes from an empty book
gives exactly the book the API serves; every changed order is an `exchange.order` entry on its
user's stream. Orders go through the public HTTP API, concurrently."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.kit import streams
from tests.exchange.conftest import MarketFactory

Trader = Callable[..., Awaitable[Any]]


async def market_entries(redis: Redis, ticker: str) -> list[dict[str, Any]]:
    rows = await redis.xrange(streams.MARKET_STREAM)
    events = [streams.decode(fields[b"e"]) for _, fields in rows]
    return [e for e in events if e.get("ticker") == ticker and "seq" in e]


async def user_entries(redis: Redis, user_id: str) -> list[dict[str, Any]]:
    rows = await redis.xrange(streams.USER_STREAM)
    return [streams.decode(f[b"e"]) for _, f in rows if f[b"u"].decode() == user_id]


def replay(events: list[dict[str, Any]]) -> dict[str, dict[int, int]]:
    book: dict[str, dict[int, int]] = {"yes": {}, "no": {}}
    for e in events:
        for c in e["changes"]:
            side = book[c["side"]]
            side[c["price"]] = side.get(c["price"], 0) + c["delta"]
            assert side[c["price"]] == c["count"]
            if side[c["price"]] == 0:
                del side[c["price"]]
    return book


async def rest_book(client: httpx.AsyncClient, ticker: str, headers: Any) -> dict[str, Any]:
    r = await client.get(f"/api/v1/markets/{ticker}/orderbook", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    return {
        "yes": {int(p): int(c) for p, c in body["yes"]},
        "no": {int(p): int(c) for p, c in body["no"]},
    }


order_st = st.fixed_dictionaries(
    {
        "who": st.integers(0, 2),
        "side": st.sampled_from(["yes", "no"]),
        "price": st.integers(30, 70),
        "count": st.integers(1, 5),
        "cancel": st.booleans(),
    }
)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(orders=st.lists(order_st, min_size=6, max_size=14))
async def test_book_events_replay_to_the_served_book(
    orders: list[dict[str, Any]],
    client: httpx.AsyncClient,
    market_factory: MarketFactory,
    trader: Trader,
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ticker = await market_factory()
    users = [await trader(cents=1_000_000) for _ in range(3)]
    placed: list[tuple[Any, str]] = []

    async def place(o: dict[str, Any]) -> None:
        u = users[o["who"]]
        body = {
            "ticker": ticker,
            "side": o["side"],
            "action": "buy",
            "count": o["count"],
            "yes_price" if o["side"] == "yes" else "no_price": o["price"],
        }
        r = await client.post("/api/v1/orders", json=body, headers=u.headers)
        assert r.status_code == 201, r.text
        if o["cancel"] and r.json()["status"] == "resting":
            placed.append((u, r.json()["order_id"]))

    await asyncio.gather(*(place(o) for o in orders))
    random.shuffle(placed)
    await asyncio.gather(
        *(client.delete(f"/api/v1/orders/{oid}", headers=u.headers) for u, oid in placed)
    )

    events = await market_entries(redis, ticker)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert replay(events) == await rest_book(client, ticker, users[0].headers)
    async with sessionmaker() as s:
        seq = (
            await s.execute(
                text(
                    "SELECT s.seq FROM exchange_book_state s JOIN exchange_markets m "
                    "ON m.id = s.market_id WHERE m.ticker = :t"
                ),
                {"t": ticker},
            )
        ).scalar_one()
    assert seq == len(events)

    # each user's stream names each of its orders, with the latest status last
    for u in users:
        mine = [e for e in await user_entries(redis, str(u.id)) if e["type"] == "exchange.order"]
        r = await client.get("/api/v1/orders", params={"ticker": ticker}, headers=u.headers)
        served = {o["order_id"]: o for o in r.json()["items"]}
        last: dict[str, dict[str, Any]] = {}
        for e in mine:
            assert e["data"]["user_id"] == str(u.id)
            last[e["data"]["order_id"]] = e["data"]["order"]
        assert set(last) == set(served)
        for oid, order in last.items():
            assert (order["status"], order["remaining_count"], order["fill_count"]) == (
                served[oid]["status"],
                served[oid]["remaining_count"],
                served[oid]["fill_count"],
            )
        fills = [f for e in mine for f in e["data"]["fills"]]
        r = await client.get("/api/v1/fills", params={"ticker": ticker}, headers=u.headers)
        assert sorted(f["trade_id"] for f in fills) == sorted(
            f["trade_id"] for f in r.json()["items"]
        )


async def test_replayed_order_publishes_nothing(
    client: httpx.AsyncClient, market_factory: MarketFactory, trader: Trader, redis: Redis
) -> None:
    ticker = await market_factory()
    u = await trader()
    body = {"ticker": ticker, "side": "yes", "action": "buy", "count": 3, "yes_price": 40}
    headers = {**u.headers, "Idempotency-Key": "k-1"}
    for _ in range(2):
        r = await client.post("/api/v1/orders", json=body, headers=headers)
        assert r.status_code == 201
    events = await market_entries(redis, ticker)
    assert [(e["seq"], e["changes"]) for e in events] == [
        (1, [{"side": "yes", "price": 40, "delta": 3, "count": 3}])
    ]
    assert len(await user_entries(redis, str(u.id))) == 1
