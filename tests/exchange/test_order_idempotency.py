"""Idempotency means the same request: an order's key (`client_order_id`, or the app API's
`Idempotency-Key`) replays the first result only for the same order; any other order under the
same key is 409 `IDEMPOTENCY_KEY_REUSED`, on both surfaces and per batch item."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import random_client_ip
from tests.exchange.conftest import check_invariants
from tests.exchange.kalshi_support import Bot, new_key, register_key

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(random_client_ip(), 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def _buy(ticker: str, price: int, **extra: Any) -> dict[str, Any]:
    return {
        "ticker": ticker,
        "side": "yes",
        "action": "buy",
        "count": 3,
        "yes_price": price,
        **extra,
    }


def _reused(r: httpx.Response) -> None:
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED", r.text


async def test_app_order_replays_only_the_same_order(
    http: httpx.AsyncClient, trader: Any, market_factory: Any, sessionmaker: Maker
) -> None:
    ticker = await market_factory()
    user, other = await trader(), await trader()
    h = user.headers
    first = await http.post(
        "/api/v1/orders", json=_buy(ticker, 40, client_order_id="c-1"), headers=h
    )
    assert first.status_code == 201, first.text
    # Someone fills part of it: the order changes, a replay still answers the first result.
    sell = {"ticker": ticker, "side": "no", "action": "buy", "count": 1, "no_price": 60}
    assert (await http.post("/api/v1/orders", json=sell, headers=other.headers)).status_code == 201
    again = await http.post(
        "/api/v1/orders", json=_buy(ticker, 40, client_order_id="c-1"), headers=h
    )
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    # The same key for another price, count or side is refused and changes nothing.
    for changed in (
        _buy(ticker, 41, client_order_id="c-1"),
        _buy(ticker, 40, client_order_id="c-1", count=4),
        _buy(ticker, 40, client_order_id="c-1", time_in_force="immediate_or_cancel"),
    ):
        _reused(await http.post("/api/v1/orders", json=changed, headers=h))
    # The Idempotency-Key header is the same key.
    keyed = {**h, "Idempotency-Key": "k-1"}
    r1 = await http.post("/api/v1/orders", json=_buy(ticker, 30), headers=keyed)
    assert r1.status_code == 201 and r1.json()["client_order_id"] == "k-1"
    r2 = await http.post("/api/v1/orders", json=_buy(ticker, 30), headers=keyed)
    assert r2.status_code == 201 and r2.json()["order_id"] == r1.json()["order_id"]
    _reused(await http.post("/api/v1/orders", json=_buy(ticker, 31), headers=keyed))
    # Keys are per user: another user's c-1 is a new order.
    theirs = await http.post(
        "/api/v1/orders", json=_buy(ticker, 20, client_order_id="c-1"), headers=other.headers
    )
    assert theirs.status_code == 201 and theirs.json()["order_id"] != first.json()["order_id"]
    r = await http.get("/api/v1/orders", params={"ticker": ticker}, headers=h)
    assert len(r.json()["items"]) == 2
    async with sessionmaker() as s:
        await check_invariants(s, [ticker])


async def test_batch_items_are_idempotent_per_client_order_id(
    http: httpx.AsyncClient, trader: Any, market_factory: Any
) -> None:
    ticker = await market_factory()
    user = await trader()
    h = user.headers
    batch = {"orders": [_buy(ticker, 20, client_order_id="b-1"), _buy(ticker, 21)]}
    r = await http.post("/api/v1/orders/batch", json=batch, headers=h)
    assert r.status_code == 201, r.text
    placed = r.json()["orders"][0]["order"]
    retry = {
        "orders": [
            _buy(ticker, 20, client_order_id="b-1"),
            _buy(ticker, 25, client_order_id="b-1"),
            _buy(ticker, 22, client_order_id="b-2"),
        ]
    }
    r = await http.post("/api/v1/orders/batch", json=retry, headers=h)
    assert r.status_code == 201, r.text
    same, reused, fresh = r.json()["orders"]
    assert same["error"] is None and same["order"] == placed
    assert reused["order"] is None and reused["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert fresh["error"] is None and fresh["order"]["yes_price"] == 22
    # A single order with a batch item's key is the same key.
    _reused(
        await http.post("/api/v1/orders", json=_buy(ticker, 26, client_order_id="b-2"), headers=h)
    )
    r = await http.get("/api/v1/orders", params={"ticker": ticker}, headers=h)
    assert len(r.json()["items"]) == 3


async def test_trade_api_order_key_reuse_is_409_in_kalshi_shape(
    http: httpx.AsyncClient, trader: Any, market_factory: Any
) -> None:
    ticker = await market_factory()
    user = await trader()
    key = new_key()
    bot = Bot(
        user_id=user.id,
        key_id=await register_key(http, user.headers, key),
        key=key,
        bearer=user.headers,
    )
    body = _buy(ticker, 40, client_order_id="t-1")
    first = await bot.request(http, "POST", "/portfolio/orders", json=body)
    assert first.status_code == 201, first.text
    again = await bot.request(http, "POST", "/portfolio/orders", json=body)
    assert again.status_code == 201 and again.json() == first.json()
    r = await bot.request(http, "POST", "/portfolio/orders", json={**body, "yes_price": 41})
    assert r.status_code == 409, r.text
    assert set(r.json()) == {"error"}
    assert set(r.json()["error"]) == {"code", "message", "details"}
    assert r.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    # The key is the user's on both surfaces.
    r = await http.post("/api/v1/orders", json=body, headers=user.headers)
    assert r.status_code == 201 and r.json()["order_id"] == first.json()["order"]["order_id"]
    _reused(await http.post("/api/v1/orders", json={**body, "count": 9}, headers=user.headers))
    # Batch items too.
    batch = {"orders": [body, {**body, "yes_price": 45}]}
    r = await bot.request(http, "POST", "/portfolio/orders/batched", json=batch)
    assert r.status_code == 200, r.text
    same, reused = r.json()["orders"]
    assert same["error"] is None and same["order"]["order_id"] == first.json()["order"]["order_id"]
    assert reused["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_order_keys_have_the_same_limits_as_every_other_key(
    http: httpx.AsyncClient, trader: Any, market_factory: Any
) -> None:
    ticker = await market_factory()
    user = await trader()
    ok = "k" * 64
    r = await http.post(
        "/api/v1/orders", json=_buy(ticker, 10, client_order_id=ok), headers=user.headers
    )
    assert r.status_code == 201, r.text
    r = await http.post(
        "/api/v1/orders",
        json=_buy(ticker, 10),
        headers={**user.headers, "Idempotency-Key": "h" * 64},
    )
    assert r.status_code == 201, r.text
    r = await http.post(
        "/api/v1/orders",
        json=_buy(ticker, 10),
        headers={**user.headers, "Idempotency-Key": "h" * 65},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "INVALID_IDEMPOTENCY_KEY"), r.text
    r = await http.post(
        "/api/v1/orders", json=_buy(ticker, 10), headers={**user.headers, "Idempotency-Key": "a b"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "INVALID_IDEMPOTENCY_KEY"), r.text
    r = await http.post(
        "/api/v1/orders",
        json=_buy(ticker, 10, client_order_id="c"),
        headers={**user.headers, "Idempotency-Key": "d"},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "INVALID_IDEMPOTENCY_KEY"), r.text


async def test_amend_and_decrease_take_a_key_too(
    http: httpx.AsyncClient, trader: Any, market_factory: Any, sessionmaker: Maker
) -> None:
    """A decrease by 1 retried with its key decreases once; an amend retried returns the first
    result; the same key for another change is 409. On both surfaces."""
    ticker = await market_factory()
    user = await trader()
    key = new_key()
    bot = Bot(
        user_id=user.id,
        key_id=await register_key(http, user.headers, key),
        key=key,
        bearer=user.headers,
    )
    r = await http.post("/api/v1/orders", json=_buy(ticker, 30, count=10), headers=user.headers)
    oid = r.json()["order_id"]
    h = {**user.headers, "Idempotency-Key": "dec-1"}
    d1 = await http.post(f"/api/v1/orders/{oid}/decrease", json={"reduce_by": 1}, headers=h)
    d2 = await http.post(f"/api/v1/orders/{oid}/decrease", json={"reduce_by": 1}, headers=h)
    assert d1.status_code == d2.status_code == 200, d2.text
    assert d1.json() == d2.json() and d2.json()["remaining_count"] == 9
    assert d2.headers.get("Idempotent-Replayed") == "true"
    _reused(await http.post(f"/api/v1/orders/{oid}/decrease", json={"reduce_by": 2}, headers=h))
    h = {**user.headers, "Idempotency-Key": "am-1"}
    a1 = await http.post(
        f"/api/v1/orders/{oid}/amend", json={"yes_price": 31, "count": 9}, headers=h
    )
    a2 = await http.post(
        f"/api/v1/orders/{oid}/amend", json={"yes_price": 31, "count": 9}, headers=h
    )
    assert a1.status_code == a2.status_code == 200 and a1.json() == a2.json(), a2.text
    _reused(
        await http.post(
            f"/api/v1/orders/{oid}/amend", json={"yes_price": 32, "count": 9}, headers=h
        )
    )
    # The Trade API takes the same header.
    path = f"/portfolio/orders/{oid}/decrease"
    kh = {"Idempotency-Key": "dec-2"}
    t1 = await bot.request(http, "POST", path, json={"reduce_by": 1}, headers=kh)
    t2 = await bot.request(http, "POST", path, json={"reduce_by": 1}, headers=kh)
    assert t1.status_code == t2.status_code == 200 and t1.json() == t2.json(), t2.text
    assert t2.json()["order"]["remaining_count"] == 8
    r = await bot.request(http, "POST", path, json={"reduce_by": 3}, headers=kh)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    path = f"/portfolio/orders/{oid}/amend"
    kh = {"Idempotency-Key": "am-2"}
    t1 = await bot.request(http, "POST", path, json={"yes_price": 33, "count": 9}, headers=kh)
    t2 = await bot.request(http, "POST", path, json={"yes_price": 33, "count": 9}, headers=kh)
    assert t1.status_code == t2.status_code == 200 and t1.json() == t2.json(), t2.text
    r = await bot.request(http, "POST", path, json={"yes_price": 34, "count": 9}, headers=kh)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    async with sessionmaker() as s:
        await check_invariants(s, [ticker])
