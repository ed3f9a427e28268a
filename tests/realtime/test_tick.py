"""The hub's tick: flushes start at most once per STREAM_TICK_SECONDS, counted from the start of
the previous flush, so a slow fan-out does not add a whole tick on top of itself."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, cast

import orjson
import redis as sync_redis

from pull.kit import streams
from pull.realtime.hub import Feed, Hub, Shared, Subscription
from tests.conftest import Services

TICK = 0.5
FAN_OUT = 0.4  # what one flush costs here: longer than most of the tick


def event(seq: int) -> dict[str, Any]:
    ticker = f"T-TICK-{uuid.uuid4().hex[:6]}"
    ms = int(time.time() * 1000)
    return {"eid": uuid.uuid4().hex, "ticker": ticker, "seq": seq, "ts": ms, "changes": []}


class SlowEverywhere(Subscription):
    """A subscription to every market whose delivery costs FAN_OUT seconds of the loop; during
    the first one, the next event is published."""

    channel = "market"

    def __init__(self, redis_url: str) -> None:
        super().__init__(None, None)
        self.redis_url = redis_url
        self.batches: list[tuple[float, list[int]]] = []

    def on_batch(self, feed: Feed | None, events: list[dict[str, Any]], shared: Shared) -> None:
        self.batches.append((time.monotonic(), [int(e["seq"]) for e in events]))
        if len(self.batches) == 1:
            with sync_redis.Redis.from_url(self.redis_url) as r:
                r.xadd(streams.MARKET_STREAM, {"e": orjson.dumps(event(2))})
        time.sleep(FAN_OUT)  # the fan-out's CPU: the loop does nothing else meanwhile


async def test_a_slow_fan_out_is_not_followed_by_a_whole_tick(services: Services) -> None:
    hub = Hub(redis_url=services.redis_url, sessionmaker=cast(Any, None), tick_seconds=TICK)
    sub = SlowEverywhere(services.redis_url)
    await hub.watch(sub, None)
    hub.start()
    try:
        for _ in range(100):
            if hub.connected:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        with sync_redis.Redis.from_url(services.redis_url) as r:
            r.xadd(streams.MARKET_STREAM, {"e": orjson.dumps(event(1))})
        for _ in range(100):
            if len(sub.batches) >= 2:
                break
            await asyncio.sleep(0.05)
        (first, a), (second, b) = sub.batches[:2]
        assert (a, b) == ([1], [2])
        # The second event was read while the first flush ran; it goes out one tick after the
        # first flush started (not a tick after it ended: FAN_OUT + TICK = 0.9 s).
        assert TICK - 0.05 <= second - first < FAN_OUT + TICK - 0.15, second - first
    finally:
        await hub.stop()
