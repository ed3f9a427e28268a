"""Market reads served from memory are never stale after a commit: a market and its order book
read on one `pull api` process reflect an order answered by another process at once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pull.exchange import read_cache
from pull.kit.db import session_scope
from tests.conftest import Services, random_client_ip, start_api_process, stop_process
from tests.exchange.test_query_counts import statements


async def test_reads_on_one_process_see_orders_answered_by_another_at_once(
    services: Services, trader: Any, market_factory: Any, redis: Redis
) -> None:
    ticker = await market_factory()
    user = await trader(cents=100_000)
    (pa, a), (pb, b) = (start_api_process(services, RATE_LIMIT_ENABLED="false") for _ in "ab")
    try:
        h = user.headers
        async with httpx.AsyncClient(timeout=30) as c:
            for _ in range(3):  # warm both processes' caches
                for url in (a, b):
                    assert (await c.get(f"{url}/api/v1/markets/{ticker}", headers=h)).json()[
                        "yes_bid"
                    ] is None
                    assert (
                        await c.get(f"{url}/api/v1/markets/{ticker}/orderbook", headers=h)
                    ).json()["yes"] == []
            before = await redis.get(read_cache.version_key(ticker))
            for price in (40, 42):
                r = await c.post(
                    f"{a}/api/v1/orders",
                    headers=user.headers,
                    json={
                        "ticker": ticker,
                        "side": "yes",
                        "action": "buy",
                        "count": 2,
                        "yes_price": price,
                    },
                )
                assert r.status_code == 201, r.text
                market = (await c.get(f"{b}/api/v1/markets/{ticker}", headers=h)).json()
                book = (await c.get(f"{b}/api/v1/markets/{ticker}/orderbook", headers=h)).json()
                assert market["yes_bid"] == price
                assert book["yes"][0] == [price, 2]
                # the Trade API's answers are cached serialized, under the same version
                trade = (await c.get(f"{b}/trade-api/v2/markets/{ticker}/orderbook")).json()
                assert trade["orderbook"]["yes"][-1] == [price, 2]  # ascending, best last
                tm = (await c.get(f"{b}/trade-api/v2/markets/{ticker}")).json()["market"]
                assert tm["yes_bid"] == price
            assert await redis.get(read_cache.version_key(ticker)) != before
            # while the invalidation channel is live, a read pays no Redis round trip
            gets = await _gets(redis)
            for _ in range(10):
                for path in ("", "/orderbook"):
                    r = await c.get(f"{b}/api/v1/markets/{ticker}{path}", headers=h)
                    assert r.status_code == 200
                    r = await c.get(f"{b}/trade-api/v2/markets/{ticker}{path}")
                    assert r.status_code == 200
            assert await _gets(redis) - gets <= 8  # (a worker's first look; not per request)
    finally:
        stop_process(pa)
        stop_process(pb)


async def _gets(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


async def test_a_redis_that_restarts_empty_revives_no_cached_answer(
    redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Versions are tokens, not counters: after a flush, bumps must not repeat an old version."""
    ticker = "RC-FLUSH-TEST"
    answers = iter(["before", "after-bump", "after-flush"])

    async def load() -> str:
        return next(answers)

    async with sessionmaker() as session:
        assert await read_cache.read(session, "t", ticker, None, load) == "before"
        assert await read_cache.read(session, "t", ticker, None, load) == "before"  # cached
        await read_cache.committed(session, {ticker})
        assert await read_cache.read(session, "t", ticker, None, load) == "after-bump"
        await redis.flushdb()
        await read_cache.committed(session, {ticker})
        assert await read_cache.read(session, "t", ticker, None, load) == "after-flush"


async def test_a_unit_of_work_returns_after_its_new_version_is_published(
    redis: Redis, sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: Any
) -> None:
    """`kit.db.session_scope` (the settlement activities) awaits the version bump, so a caller
    that blocks its event loop next (a sync SDK asking another process) reads fresh answers.
    The bump is slowed here: without the after-commit hook it is still a pending task."""
    real_bump = read_cache._bump

    async def slow_bump(r: Redis, tickers: set[str]) -> None:
        await asyncio.sleep(0.3)
        await real_bump(r, tickers)

    monkeypatch.setattr(read_cache, "_bump", slow_bump)
    ticker = "RC-SCOPE-TEST"
    await redis.set(read_cache.version_key(ticker), b"old")
    async with session_scope(sessionmaker) as s:
        read_cache.touch(s, ticker)
    assert await redis.get(read_cache.version_key(ticker)) != b"old"


async def test_concurrent_misses_of_a_market_read_the_database_once(
    app: FastAPI, trader: Any, market_factory: Any
) -> None:
    """A herd of requests that miss together (a fresh market, or an answer just aged out) waits
    for one load: the same statements as one request, not one load per request."""
    user = await trader(cents=0)
    engine: AsyncEngine = app.state.engine
    paths = (
        "/api/v1/markets/{t}",
        "/api/v1/markets/{t}/orderbook",
        "/trade-api/v2/markets/{t}",
        "/trade-api/v2/markets/{t}/orderbook",
    )

    async def cost(path: str, n: int) -> int:
        url = path.format(t=await market_factory())
        transport = httpx.ASGITransport(app=app, client=(random_client_ip(), 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            with statements(engine) as seen:
                rs = await asyncio.gather(*(c.get(url, headers=user.headers) for _ in range(n)))
        assert [r.status_code for r in rs] == [200] * n, rs[0].text  # (within the rate limits)
        assert len({r.content for r in rs}) == 1
        return len(seen)

    for path in paths:
        one = await cost(path, 1)
        assert one >= 1, path  # (a fresh market is read from the database)
        assert await cost(path, 16) == one, path


async def test_a_read_after_a_new_version_does_not_join_a_load_begun_before_it(
    redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Requests that miss together share one load, but only under the version it was begun
    at: one that arrives after a commit's new version reads for itself."""
    ticker = "RC-SINGLE-FLIGHT"
    gate = asyncio.Event()
    loads: list[str] = []

    async def slow() -> str:
        loads.append("before")
        await gate.wait()
        return "before"

    async def fresh() -> str:
        loads.append("after")
        return "after"

    async with sessionmaker() as s1, sessionmaker() as s2, sessionmaker() as s3:
        first = asyncio.create_task(read_cache.read(s1, "t", ticker, None, slow))
        await asyncio.sleep(0.05)
        joined = asyncio.create_task(read_cache.read(s2, "t", ticker, None, slow))
        await asyncio.sleep(0.05)
        await read_cache.committed(s3, {ticker})  # a commit's new version
        after = read_cache.read(s3, "t", ticker, None, fresh)
        assert await asyncio.wait_for(after, timeout=10) == "after"  # (not waiting on `slow`)
        gate.set()
        assert await first == "before"
        assert await joined == "before"
    assert loads == ["before", "after"]
