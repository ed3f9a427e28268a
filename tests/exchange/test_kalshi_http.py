"""The Kalshi-compatible Trade API v2 over raw HTTP: what Kalshi's SDK does not check itself.

Cursor pagination across pages, query filters, the error shape and status codes, signature
failures, units and enums, rate-limit tiers, and the 501s for what PULL does not offer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import random_client_ip
from tests.exchange.kalshi_support import (
    PREFIX,
    Bot,
    kalshi_headers,
    make_structure,
    new_key,
    public_pem,
    register_key,
)

Trader = Callable[..., Awaitable[Any]]
BotFactory = Callable[..., Awaitable[Bot]]


@pytest.fixture(scope="module")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    return [new_key() for _ in range(3)]


@pytest.fixture
async def kc(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client from a loopback address of its own (public reads are limited per IP)."""
    transport = httpx.ASGITransport(app=app, client=(random_client_ip(), 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def bot_factory(
    kc: httpx.AsyncClient, trader: Trader, rsa_keys: list[rsa.RSAPrivateKey]
) -> BotFactory:
    used = iter(rsa_keys)

    async def make(cents: int = 100_000) -> Bot:
        user = await trader(cents=cents)
        key = next(used)
        key_id = await register_key(kc, user.headers, key)
        return Bot(user_id=user.id, key_id=key_id, key=key, bearer=user.headers)

    return make


def assert_kalshi_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Kalshi's shape: exactly {"error": {"code", "message", "details"}}, details an object."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"code", "message", "details"}, err
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    assert err["details"] is None or isinstance(err["details"], dict)
    assert re.fullmatch(r"[0-9a-f]{24}", r.headers["x-request-id"])
    return err  # type: ignore[no-any-return]


# --- public market data ----------------------------------------------------------------------


async def test_markets_paginate_across_pages(
    kc: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tickers = [f"KXPAGE-26-T{i}" for i in range(5)]
    await make_structure(sessionmaker, "KXPAGE", {"KXPAGE-26": tickers})
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, "series_ticker": "KXPAGE"}
        if cursor:
            params["cursor"] = cursor
        r = await kc.get(f"{PREFIX}/markets", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"markets", "cursor"}
        assert len(body["markets"]) <= 2
        seen += [m["ticker"] for m in body["markets"]]
        pages += 1
        cursor = body["cursor"]
        assert isinstance(cursor, str)
        if not cursor:
            break
    assert sorted(seen) == sorted(tickers)
    assert len(seen) == len(set(seen))
    assert pages == 3
    # A cursor that is not one of ours is a 400, in Kalshi's shape.
    bad = await kc.get(f"{PREFIX}/markets", params={"cursor": "%%%not-a-cursor"})
    assert_kalshi_error(bad, 400, "INVALID_CURSOR")


async def test_market_fields_units_and_enums(
    kc: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await make_structure(sessionmaker, "KXUNIT", {"KXUNIT-26": ["KXUNIT-26-A"]})
    r = await kc.get(f"{PREFIX}/markets/KXUNIT-26-A")
    assert r.status_code == 200, r.text
    m = r.json()["market"]
    assert m["ticker"] == "KXUNIT-26-A"
    assert m["event_ticker"] == "KXUNIT-26"
    assert m["series_ticker"] == "KXUNIT"
    assert m["status"] == "active"  # the exchange's "open" is Kalshi's tradable "active"
    assert m["market_type"] == "binary"
    assert m["yes_bid"] == 0 and m["yes_bid_dollars"] == "0.0000"
    assert m["yes_ask"] == 100 and m["yes_ask_dollars"] == "1.0000"
    assert m["last_price"] == 0 and m["volume"] == 0 and m["volume_fp"] == "0.00"
    assert m["result"] == ""
    assert m["notional_value"] == 100 and m["notional_value_dollars"] == "1.0000"
    assert m["response_price_units"] == "usd_cent"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", m["close_time"])
    assert_kalshi_error(await kc.get(f"{PREFIX}/markets/NOPE"), 404, "MARKET_NOT_FOUND")


async def test_market_filters(
    kc: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await make_structure(
        sessionmaker,
        "KXF",
        {"KXF-A": ["KXF-A-1", "KXF-A-2"], "KXF-B": ["KXF-B-1"]},
        close_in={"KXF-A-1": dt.timedelta(days=1), "KXF-B-1": dt.timedelta(days=10)},
    )
    await make_structure(sessionmaker, "KXG", {"KXG-A": ["KXG-A-1"]}, open_markets=False)

    async def tickers(**params: Any) -> list[str]:
        r = await kc.get(f"{PREFIX}/markets", params=params)
        assert r.status_code == 200, r.text
        return sorted(m["ticker"] for m in r.json()["markets"])

    assert await tickers(event_ticker="KXF-A") == ["KXF-A-1", "KXF-A-2"]
    assert await tickers(series_ticker="KXF") == ["KXF-A-1", "KXF-A-2", "KXF-B-1"]
    assert await tickers(tickers="KXF-B-1,KXG-A-1") == ["KXF-B-1", "KXG-A-1"]
    assert await tickers(status="unopened") == ["KXG-A-1"]
    assert await tickers(status="open", series_ticker="KXG") == []
    now = int(time.time())
    day = 86_400
    assert await tickers(series_ticker="KXF", max_close_ts=now + 2 * day) == ["KXF-A-1"]
    assert await tickers(series_ticker="KXF", min_close_ts=now + 5 * day) == ["KXF-A-2", "KXF-B-1"]
    assert await tickers(min_close_ts=now + 5 * day, max_close_ts=now + 20 * day) == ["KXF-B-1"]
    # A close-time window and a small page still walk every match through the cursor.
    r = await kc.get(
        f"{PREFIX}/markets",
        params={"series_ticker": "KXF", "min_close_ts": now + 5 * day, "limit": 1},
    )
    page1 = r.json()
    assert len(page1["markets"]) == 1 and page1["cursor"]
    r = await kc.get(
        f"{PREFIX}/markets",
        params={
            "series_ticker": "KXF",
            "min_close_ts": now + 5 * day,
            "limit": 1,
            "cursor": page1["cursor"],
        },
    )
    page2 = r.json()
    assert {page1["markets"][0]["ticker"], page2["markets"][0]["ticker"]} == {"KXF-A-2", "KXF-B-1"}
    assert_kalshi_error(
        await kc.get(f"{PREFIX}/markets", params={"status": "bogus"}), 400, "INVALID_PARAMETERS"
    )


async def test_events_and_series(
    kc: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await make_structure(
        sessionmaker, "KXEV", {"KXEV-1": ["KXEV-1-A", "KXEV-1-B"], "KXEV-2": ["KXEV-2-A"]}
    )
    r = await kc.get(f"{PREFIX}/events", params={"series_ticker": "KXEV", "limit": 1})
    body = r.json()
    assert r.status_code == 200 and len(body["events"]) == 1 and body["cursor"]
    first = body["events"][0]
    assert first["event_ticker"] == "KXEV-1" and first["series_ticker"] == "KXEV"
    assert first["markets"] is None
    r = await kc.get(
        f"{PREFIX}/events",
        params={
            "series_ticker": "KXEV",
            "limit": 1,
            "cursor": body["cursor"],
            "with_nested_markets": "true",
        },
    )
    second = r.json()["events"]
    assert [e["event_ticker"] for e in second] == ["KXEV-2"]
    assert [m["ticker"] for m in second[0]["markets"]] == ["KXEV-2-A"]
    assert second[0]["status"] == "open"

    one = (await kc.get(f"{PREFIX}/events/KXEV-1")).json()
    assert one["event"]["title"] == "Event KXEV-1"
    assert sorted(m["ticker"] for m in one["markets"]) == ["KXEV-1-A", "KXEV-1-B"]
    assert_kalshi_error(await kc.get(f"{PREFIX}/events/NOPE"), 404, "EVENT_NOT_FOUND")

    series = (await kc.get(f"{PREFIX}/series/KXEV")).json()["series"]
    assert series["ticker"] == "KXEV" and series["category"] == "Economics"
    listed = (await kc.get(f"{PREFIX}/series", params={"category": "Economics"})).json()["series"]
    assert "KXEV" in [s["ticker"] for s in listed]
    assert_kalshi_error(await kc.get(f"{PREFIX}/series/NOPE"), 404, "SERIES_NOT_FOUND")

    status = (await kc.get(f"{PREFIX}/exchange/status")).json()
    assert status == {
        "exchange_active": True,
        "trading_active": True,
        "exchange_estimated_resume_time": None,
    }


# --- errors -----------------------------------------------------------------------------------


async def test_error_shapes_and_codes(kc: httpx.AsyncClient, bot_factory: BotFactory) -> None:
    assert_kalshi_error(await kc.get(f"{PREFIX}/no/such/path"), 404, "NOT_FOUND")
    assert_kalshi_error(await kc.put(f"{PREFIX}/markets"), 405, "METHOD_NOT_ALLOWED")
    err = assert_kalshi_error(
        await kc.get(f"{PREFIX}/markets", params={"limit": "many"}), 400, "INVALID_PARAMETERS"
    )
    assert err["details"]["errors"][0]["loc"] == ["query", "limit"]
    assert_kalshi_error(
        await kc.get(f"{PREFIX}/markets", params={"limit": 0}), 400, "INVALID_PARAMETERS"
    )
    for path in (
        "/communications/rfqs",
        "/portfolio/order_groups",
        "/multivariate_event_collections",
    ):
        err = assert_kalshi_error(await kc.get(PREFIX + path), 501, "NOT_SUPPORTED")
        assert "PULL does not offer" in err["message"]
    assert_kalshi_error(await kc.get(f"{PREFIX}/events/multivariate"), 501, "NOT_SUPPORTED")
    # Signed endpoints without a signature: 401.
    assert_kalshi_error(await kc.get(f"{PREFIX}/portfolio/balance"), 401, "UNAUTHORIZED")

    bot = await bot_factory()
    bad_body = await bot.request(kc, "POST", "/portfolio/orders", json={"ticker": "X"})
    assert_kalshi_error(bad_body, 400, "INVALID_PARAMETERS")
    not_json = await bot.request(
        kc, "POST", "/portfolio/orders", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert_kalshi_error(not_json, 400, "INVALID_PARAMETERS")
    missing = await bot.request(kc, "GET", f"/portfolio/orders/{uuid.uuid4()}")
    assert_kalshi_error(missing, 404, "ORDER_NOT_FOUND")
    assert_kalshi_error(
        await bot.request(kc, "GET", "/portfolio/orders/xyz"), 404, "ORDER_NOT_FOUND"
    )
    closed = await bot.request(
        kc,
        "POST",
        "/portfolio/orders",
        json={
            "ticker": "NOPE",
            "side": "yes",
            "action": "buy",
            "count": 1,
            "type": "limit",
            "yes_price": 50,
        },
    )
    assert_kalshi_error(closed, 404, "MARKET_NOT_FOUND")

    # The rest of the app keeps PULL's envelope (with request_id).
    pull = await kc.get("/api/v1/no-such-thing")
    assert pull.status_code == 404
    assert pull.json()["error"]["request_id"] == pull.headers["x-request-id"]


# --- signatures -------------------------------------------------------------------------------


async def test_signature_failures(
    kc: httpx.AsyncClient, bot_factory: BotFactory, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    bot = await bot_factory()
    path = f"{PREFIX}/portfolio/balance"
    ok = await kc.get(path, headers=bot.headers("GET", path))
    assert ok.status_code == 200, ok.text

    # Wrong key: signed with a private key other than the registered one.
    stranger = new_key()
    wrong = kalshi_headers(stranger, bot.key_id, "GET", path)
    assert_kalshi_error(await kc.get(path, headers=wrong), 401, "INVALID_SIGNATURE")
    # Stale timestamp: more than 60 s old.
    old = int(time.time() * 1000) - 120_000
    assert_kalshi_error(
        await kc.get(path, headers=bot.headers("GET", path, old)), 401, "STALE_TIMESTAMP"
    )
    # Altered path: a signature for /portfolio/balance does not open /portfolio/positions.
    altered = bot.headers("GET", path)
    assert_kalshi_error(
        await kc.get(f"{PREFIX}/portfolio/positions", headers=altered), 401, "INVALID_SIGNATURE"
    )
    # Altered method.
    get_sig = bot.headers("GET", f"{PREFIX}/portfolio/orders")
    assert_kalshi_error(
        await kc.post(f"{PREFIX}/portfolio/orders", headers=get_sig, json={}),
        401,
        "INVALID_SIGNATURE",
    )
    # Unknown key id, tampered signature, missing headers.
    assert_kalshi_error(
        await kc.get(path, headers=kalshi_headers(bot.key, str(uuid.uuid4()), "GET", path)),
        401,
        "INVALID_SIGNATURE",
    )
    tampered = {**bot.headers("GET", path), "KALSHI-ACCESS-SIGNATURE": "AAAA"}
    assert_kalshi_error(await kc.get(path, headers=tampered), 401, "INVALID_SIGNATURE")
    assert_kalshi_error(await kc.get(path, headers=bot.bearer), 401, "UNAUTHORIZED")
    # The query string is not part of the signed message (as with Kalshi).
    q = await kc.get(
        f"{PREFIX}/portfolio/orders?limit=5",
        headers=bot.headers("GET", f"{PREFIX}/portfolio/orders"),
    )
    assert q.status_code == 200, q.text


async def test_api_keys_over_the_trade_api(kc: httpx.AsyncClient, bot_factory: BotFactory) -> None:
    bot = await bot_factory()
    listed = (await bot.request(kc, "GET", "/api_keys")).json()["api_keys"]
    assert [k["api_key_id"] for k in listed] == [bot.key_id]
    assert listed[0]["name"] == "bot" and listed[0]["scopes"] == ["read", "write"]

    second = new_key()
    # A request signed with a key cannot create keys (issue 12 item 8): the session can.
    r = await bot.request(
        kc, "POST", "/api_keys", json={"name": "second", "public_key": public_pem(second)}
    )
    assert_kalshi_error(r, 403, "SIGNED_REQUEST_CANNOT_CREATE_KEYS")
    gen = await bot.request(kc, "POST", "/api_keys/generate", json={"name": "generated"})
    assert_kalshi_error(gen, 403, "SIGNED_REQUEST_CANNOT_CREATE_KEYS")
    second_id = await register_key(kc, bot.bearer, second)
    other = Bot(user_id=bot.user_id, key_id=second_id, key=second, bearer=bot.bearer)
    assert (await other.request(kc, "GET", "/portfolio/balance")).status_code == 200

    gone = await bot.request(kc, "DELETE", f"/api_keys/{second_id}")
    assert gone.status_code == 204
    assert_kalshi_error(
        await other.request(kc, "GET", "/portfolio/balance"), 401, "INVALID_SIGNATURE"
    )
    assert_kalshi_error(
        await bot.request(kc, "DELETE", f"/api_keys/{second_id}"), 404, "API_KEY_NOT_FOUND"
    )
    names = sorted(
        k["name"] for k in (await bot.request(kc, "GET", "/api_keys")).json()["api_keys"]
    )
    assert names == ["bot"]


# --- trading over raw HTTP --------------------------------------------------------------------


def _order(
    ticker: str, side: str, action: str, count: int, price: int, **kw: Any
) -> dict[str, Any]:
    body = {"ticker": ticker, "side": side, "action": action, "count": count, "type": "limit"}
    body[f"{side}_price"] = price
    return {**body, **kw}


async def test_orders_book_fills_positions_filters(
    kc: httpx.AsyncClient,
    bot_factory: BotFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await make_structure(
        sessionmaker, "KXT", {"KXT-1": ["KXT-1-A", "KXT-1-B"], "KXT-2": ["KXT-2-A"]}
    )
    alice, bob = await bot_factory(), await bot_factory()

    r = await alice.request(
        kc, "POST", "/portfolio/orders", json=_order("KXT-1-A", "yes", "buy", 10, 40)
    )
    assert r.status_code == 201, r.text
    o = r.json()["order"]
    assert o["status"] == "resting" and o["yes_price"] == 40 and o["no_price"] == 60
    assert o["yes_price_dollars"] == "0.4000" and o["initial_count_fp"] == "10.00"
    assert o["outcome_side"] == "yes" and o["book_side"] == "bid"
    # Prices as dollar strings, counts as fixed-point strings.
    r = await alice.request(
        kc,
        "POST",
        "/portfolio/orders",
        json={
            "ticker": "KXT-1-A",
            "side": "yes",
            "action": "buy",
            "count_fp": "5.00",
            "yes_price_dollars": "0.3800",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["order"]["yes_price"] == 38
    sub_cent = await alice.request(
        kc,
        "POST",
        "/portfolio/orders",
        json={
            "ticker": "KXT-1-A",
            "side": "yes",
            "action": "buy",
            "count": 1,
            "yes_price_dollars": "0.385",
        },
    )
    assert_kalshi_error(sub_cent, 400, "INVALID_PRICE")
    r = await alice.request(
        kc, "POST", "/portfolio/orders", json=_order("KXT-2-A", "no", "buy", 3, 70)
    )
    assert r.status_code == 201

    book = (await kc.get(f"{PREFIX}/markets/KXT-1-A/orderbook")).json()
    assert book["orderbook"]["yes"] == [[38, 5], [40, 10]]  # ascending, best last
    assert book["orderbook"]["no"] == []
    assert book["orderbook"]["yes_dollars"] == [["0.3800", 5], ["0.4000", 10]]
    assert book["orderbook"]["true"] == [{"price": 38, "count": 5}, {"price": 40, "count": 10}]
    assert book["orderbook_fp"]["yes_dollars"] == [["0.3800", "5.00"], ["0.4000", "10.00"]]
    top = (await kc.get(f"{PREFIX}/markets/KXT-1-A/orderbook", params={"depth": 1})).json()
    assert top["orderbook"]["yes"] == [[40, 10]]

    # Bob sells 4 YES into Alice's best bid (buying NO at 60 mints the pair).
    r = await bob.request(
        kc, "POST", "/portfolio/orders", json=_order("KXT-1-A", "no", "buy", 4, 60)
    )
    assert r.status_code == 201, r.text
    assert r.json()["order"]["status"] == "executed"

    orders = (
        await alice.request(kc, "GET", "/portfolio/orders", params={"status": "resting"})
    ).json()
    assert {(x["ticker"], x["remaining_count"]) for x in orders["orders"]} == {
        ("KXT-1-A", 6),
        ("KXT-1-A", 5),
        ("KXT-2-A", 3),
    }
    by_event = (
        await alice.request(kc, "GET", "/portfolio/orders", params={"event_ticker": "KXT-2"})
    ).json()
    assert [x["ticker"] for x in by_event["orders"]] == ["KXT-2-A"]
    paged = (await alice.request(kc, "GET", "/portfolio/orders", params={"limit": 2})).json()
    assert len(paged["orders"]) == 2 and paged["cursor"]
    rest = (
        await alice.request(
            kc, "GET", "/portfolio/orders", params={"limit": 2, "cursor": paged["cursor"]}
        )
    ).json()
    assert len(rest["orders"]) == 1 and rest["cursor"] == ""

    fills = (
        await alice.request(kc, "GET", "/portfolio/fills", params={"ticker": "KXT-1-A"})
    ).json()["fills"]
    assert len(fills) == 1
    f = fills[0]
    assert (f["side"], f["action"], f["count"], f["yes_price"], f["is_taker"]) == (
        "yes",
        "buy",
        4,
        40,
        False,
    )
    assert (
        f["yes_price_dollars"] == "0.4000" and f["price"] == 40 and f["market_ticker"] == "KXT-1-A"
    )
    future = int(time.time()) + 3600
    none = (await alice.request(kc, "GET", "/portfolio/fills", params={"min_ts": future})).json()
    assert none == {"fills": [], "cursor": ""}

    pos = (await alice.request(kc, "GET", "/portfolio/positions")).json()
    assert pos["positions"] == pos["market_positions"]
    mp = {p["ticker"]: p for p in pos["market_positions"]}
    assert mp["KXT-1-A"]["position"] == 4 and mp["KXT-1-A"]["event_ticker"] == "KXT-1"
    assert (
        mp["KXT-1-A"]["market_exposure"] == 160
        and mp["KXT-1-A"]["market_exposure_dollars"] == "1.6000"
    )
    ev = {e["event_ticker"]: e for e in pos["event_positions"]}
    assert ev["KXT-1"]["total_cost"] == 160 and ev["KXT-1"]["event_exposure_dollars"] == "1.6000"
    held = (
        await alice.request(kc, "GET", "/portfolio/positions", params={"count_filter": "position"})
    ).json()
    assert [p["ticker"] for p in held["market_positions"]] == ["KXT-1-A"]
    other_event = (
        await alice.request(kc, "GET", "/portfolio/positions", params={"event_ticker": "KXT-2"})
    ).json()
    assert all(p["event_ticker"] == "KXT-2" for p in other_event["market_positions"])

    resting = (
        await alice.request(kc, "GET", "/portfolio/summary/total_resting_order_value")
    ).json()
    assert resting == {"total_resting_order_value": 6 * 40 + 5 * 38 + 3 * 70}

    trades = (await kc.get(f"{PREFIX}/markets/trades", params={"ticker": "KXT-1-A"})).json()[
        "trades"
    ]
    assert [(t["count"], t["yes_price"], t["taker_side"]) for t in trades] == [(4, 40, "no")]
    assert (
        await kc.get(
            f"{PREFIX}/markets/trades",
            params={"ticker": "KXT-1-A", "max_ts": int(time.time()) - 3600},
        )
    ).json()["trades"] == []


async def test_write_tier_counts_batch_cancels_at_a_fifth(
    kc: httpx.AsyncClient, bot_factory: BotFactory
) -> None:
    bot = await bot_factory()
    ids = [str(uuid.uuid4()) for _ in range(20)]
    # 20 cancels in one batch are 4 transactions of the 10-per-second write tier, which is kept
    # in fifths: 20 of 50 units.
    r = await bot.request(kc, "DELETE", "/portfolio/orders/batched", json={"ids": ids})
    assert r.status_code == 200, r.text
    assert (r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-remaining"]) == ("50", "30")
    items = r.json()["orders"]
    assert len(items) == 20 and items[0]["error"]["code"] == "ORDER_NOT_FOUND"
    assert r.json()["responses"] == items
    assert items[0]["error"]["error"]["code"] == "ORDER_NOT_FOUND"  # the SDK's nesting
    # An order placement costs a whole transaction (5 units), even when it is refused.
    order = {"ticker": "NOPE", "side": "yes", "action": "buy", "count": 1, "yes_price": 5}
    placed = await bot.request(kc, "POST", "/portfolio/orders", json=order)
    assert placed.status_code == 404
    # Five more batches at once are 100 units: past the budget, so some are refused.
    burst = await asyncio.gather(
        *(
            bot.request(kc, "DELETE", "/portfolio/orders/batched", json={"order_ids": ids})
            for _ in range(5)
        )
    )
    refused = [b for b in burst if b.status_code == 429]
    assert len(refused) >= 2, [b.status_code for b in burst]
    err = assert_kalshi_error(refused[0], 429, "RATE_LIMITED")
    assert err["details"]["class"] == "kalshi_write"
    assert int(refused[0].headers["retry-after"]) >= 1
    # Reads are counted apart.
    assert (await bot.request(kc, "GET", "/portfolio/balance")).status_code == 200


async def test_metrics_label_trade_api_routes_as_templates(
    kc: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await make_structure(sessionmaker, "KXM", {"KXM-1": ["KXM-1-A"]})
    await kc.get(f"{PREFIX}/markets/KXM-1-A")
    await kc.get(f"{PREFIX}/no/such/route")
    text = (await kc.get("/metrics")).text
    assert re.search(
        r'http_requests_total\{method="GET",route="/trade-api/v2/markets/\{ticker\}",status="200"\}',
        text,
    )
    assert "KXM-1-A" not in text
    assert "/no/such/route" not in text
    assert "/trade-api/v2/trade-api/v2" not in text  # the sub-app's own 404 is "unmatched"


async def test_openapi_and_docs_of_the_trade_api(kc: httpx.AsyncClient) -> None:
    spec = (await kc.get(f"{PREFIX}/openapi.json")).json()
    paths = set(spec["paths"])
    for path in (
        "/markets",
        "/markets/{ticker}/orderbook",
        "/portfolio/orders",
        "/portfolio/orders/batched",
        "/portfolio/positions",
        "/api_keys",
    ):
        assert path in paths, path
    assert not any(p.startswith("/communications") for p in paths)
    docs = await kc.get(f"{PREFIX}/docs")
    assert docs.status_code == 200 and f"{PREFIX}/openapi.json" in docs.text
    # The app's own OpenAPI stays PULL's.
    assert "/markets/{ticker}/orderbook" not in (await kc.get("/openapi.json")).json()["paths"]


async def test_batches_amend_decrease_and_item_errors(
    kc: httpx.AsyncClient,
    bot_factory: BotFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await make_structure(sessionmaker, "KXBA", {"KXBA-1": ["KXBA-1-A"]})
    bot = await bot_factory()
    r = await bot.request(
        kc,
        "POST",
        "/portfolio/orders/batched",
        json={
            "orders": [
                _order("KXBA-1-A", "yes", "buy", 2, 30, client_order_id="b-1"),
                _order("NOPE", "yes", "buy", 2, 30, client_order_id="b-2"),
                _order("KXBA-1-A", "no", "buy", 1, 50, client_order_id="b-3"),
            ]
        },
    )
    assert r.status_code == 200, r.text
    items = r.json()["orders"]
    assert r.json()["responses"] == items
    assert [i["client_order_id"] for i in items] == ["b-1", "b-2", "b-3"]
    assert items[0]["order"]["status"] == "resting" and items[0]["error"] is None
    assert items[1]["order"] is None
    assert items[1]["error"]["code"] == "MARKET_NOT_FOUND"
    assert items[1]["error"]["error"]["code"] == "MARKET_NOT_FOUND"
    oid = items[0]["order"]["order_id"]

    # Amend: optional identifying fields must match the order.
    mismatch = await bot.request(
        kc, "POST", f"/portfolio/orders/{oid}/amend", json={"ticker": "KXOTHER", "yes_price": 31}
    )
    assert_kalshi_error(mismatch, 400, "INVALID_PARAMETERS")
    amended = await bot.request(
        kc, "POST", f"/portfolio/orders/{oid}/amend", json={"yes_price_dollars": "0.3100"}
    )
    assert amended.status_code == 200, amended.text
    body = amended.json()
    assert (body["old_order"]["yes_price"], body["order"]["yes_price"]) == (30, 31)
    assert body["order"]["initial_count"] == 2  # size kept when count is not given
    reduced = await bot.request(
        kc, "POST", f"/portfolio/orders/{oid}/decrease", json={"reduce_to": 1}
    )
    assert reduced.json()["order"]["remaining_count"] == 1
    both = await bot.request(
        kc, "POST", f"/portfolio/orders/{oid}/decrease", json={"reduce_to": 0, "reduce_by": 1}
    )
    assert_kalshi_error(both, 400, "INVALID_PARAMETERS")
    queue = (await bot.request(kc, "GET", f"/portfolio/orders/{oid}/queue_position")).json()
    assert queue == {"queue_position": 0}
    canceled = await bot.request(kc, "DELETE", f"/portfolio/orders/{oid}")
    assert (canceled.json()["order"]["status"], canceled.json()["reduced_by"]) == ("canceled", 1)
    again = await bot.request(kc, "DELETE", f"/portfolio/orders/{oid}")
    assert_kalshi_error(again, 409, "ORDER_NOT_RESTING")
    # Order groups are not offered: a clear refusal, not a silently ignored field.
    grouped = await bot.request(
        kc,
        "POST",
        "/portfolio/orders",
        json=_order("KXBA-1-A", "yes", "buy", 1, 20, order_group_id="g"),
    )
    assert_kalshi_error(grouped, 400, "ORDER_GROUPS_NOT_SUPPORTED")
    wrong_series = await kc.get(
        f"{PREFIX}/series/KXOTHER/markets/KXBA-1-A/candlesticks",
        params={"start_ts": 0, "end_ts": 60, "period_interval": 1},
    )
    assert_kalshi_error(wrong_series, 404, "MARKET_NOT_FOUND")
