"""Market reads served from memory are never stale after a commit: a market and its order book
read on one `pull api` process reflect an order answered by another process at once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.exchange import read_cache
from pull.kit.db import session_scope
from tests.conftest import Services, start_api_process, stop_process


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
