"""Rate limits counted in a real Redis, and what happens when Redis is unreachable."""

from __future__ import annotations

import time

import httpx
import pytest

from pull import devstack
from pull.app import create_app
from pull.kit.errors import ServiceUnavailable, TooManyRequests
from pull.kit.ratelimit import LIMITS, OnRedisDown, RateClass, RateLimiter
from pull.kit.redis import make_redis
from tests.conftest import AppRunner, Services, asgi_client, make_settings


async def test_anonymous_limit_then_429(client: httpx.AsyncClient) -> None:
    limit = LIMITS[RateClass.anonymous].amount
    for i in range(limit):
        r = await client.get("/api/v1/status")
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-limit"] == str(limit)
        assert r.headers["x-ratelimit-remaining"] == str(limit - i - 1)
        assert int(r.headers["x-ratelimit-reset"]) >= int(time.time())
    r = await client.get("/api/v1/status")
    assert r.status_code == 429
    err = r.json()["error"]
    assert err["code"] == "RATE_LIMITED"
    assert err["request_id"] == r.headers["x-request-id"]
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["x-ratelimit-remaining"] == "0"


async def test_limits_are_per_client_ip(services: Services) -> None:
    """Behind a trusted proxy, X-Forwarded-For names the client; otherwise it is ignored."""
    limit = LIMITS[RateClass.anonymous].amount
    app = create_app(make_settings(services, TRUST_PROXY=True))
    async with AppRunner(app), asgi_client(app) as c:
        for _ in range(limit):
            assert (
                await c.get("/api/v1/status", headers={"X-Forwarded-For": "1.1.1.1"})
            ).status_code == 200
        assert (
            await c.get("/api/v1/status", headers={"X-Forwarded-For": "1.1.1.1"})
        ).status_code == 429
        assert (
            await c.get("/api/v1/status", headers={"X-Forwarded-For": "2.2.2.2"})
        ).status_code == 200


async def test_forwarded_for_ignored_without_trust_proxy(client: httpx.AsyncClient) -> None:
    limit = LIMITS[RateClass.anonymous].amount
    for i in range(limit):
        await client.get("/api/v1/status", headers={"X-Forwarded-For": f"10.0.0.{i}"})
    r = await client.get("/api/v1/status", headers={"X-Forwarded-For": "10.9.9.9"})
    assert r.status_code == 429


async def test_counts_live_in_redis(services: Services, settings: object) -> None:
    """Two app instances (two API pods) share one budget."""
    limit = LIMITS[RateClass.anonymous].amount
    a, b = create_app(make_settings(services)), create_app(make_settings(services))
    async with AppRunner(a), AppRunner(b), asgi_client(a) as ca, asgi_client(b) as cb:
        for i in range(limit):
            assert (await (ca if i % 2 else cb).get("/api/v1/status")).status_code == 200
        assert (await ca.get("/api/v1/status")).status_code == 429
        assert (await cb.get("/api/v1/status")).status_code == 429


def _dead_redis_url() -> str:
    return f"redis://127.0.0.1:{devstack.free_port()}/0"


async def test_redis_down_reads_fail_open(services: Services) -> None:
    app = create_app(make_settings(services, REDIS_URL=_dead_redis_url()))
    async with AppRunner(app), asgi_client(app) as c:
        for _ in range(LIMITS[RateClass.anonymous].amount + 5):
            r = await c.get("/api/v1/status")
            assert r.status_code == 200
            assert "x-ratelimit-limit" not in r.headers


async def test_redis_down_money_fails_closed() -> None:
    limiter = RateLimiter(make_redis(_dead_redis_url()))
    with pytest.raises(ServiceUnavailable) as info:
        await limiter.hit(RateClass.payments, "user:1", on_redis_down=OnRedisDown.fail_closed)
    assert info.value.status_code == 503


async def test_redis_down_auth_falls_back_to_local_limits() -> None:
    limiter = RateLimiter(make_redis(_dead_redis_url()))
    limit = LIMITS[RateClass.auth].amount
    for _ in range(limit):
        state = await limiter.hit(RateClass.auth, "ip:9.9.9.9", on_redis_down=OnRedisDown.local)
        assert state is not None
    with pytest.raises(TooManyRequests):
        await limiter.hit(RateClass.auth, "ip:9.9.9.9", on_redis_down=OnRedisDown.local)


async def test_payment_limit_in_redis(settings: object, services: Services) -> None:
    limiter = RateLimiter(make_redis(services.redis_url))
    limit = LIMITS[RateClass.payments].amount
    assert limit == 5
    for _ in range(limit):
        await limiter.hit(RateClass.payments, "user:7", on_redis_down=OnRedisDown.fail_closed)
    with pytest.raises(TooManyRequests) as info:
        await limiter.hit(RateClass.payments, "user:7", on_redis_down=OnRedisDown.fail_closed)
    assert int(info.value.headers["Retry-After"]) > 0
    # another user has their own budget
    await limiter.hit(RateClass.payments, "user:8", on_redis_down=OnRedisDown.fail_closed)


def test_limit_classes_match_the_policy() -> None:
    def per(item: object) -> tuple[int, int]:
        return item.amount, item.get_expiry()  # type: ignore[attr-defined]

    assert per(LIMITS[RateClass.anonymous]) == (30, 60)
    assert per(LIMITS[RateClass.authenticated]) == (100, 60)
    assert per(LIMITS[RateClass.auth]) == (10, 15 * 60)
    assert per(LIMITS[RateClass.payments]) == (5, 10 * 60)


async def test_signed_in_callers_get_the_per_user_budget(
    client: httpx.AsyncClient, settings: object
) -> None:
    from pull.config import Settings
    from pull.kit.tokens import encode_access_token

    assert isinstance(settings, Settings)
    token, _ = encode_access_token(settings, user_id="u-1", session_id="s-1")
    r = await client.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})
    assert r.headers["x-ratelimit-limit"] == "100"
    # a forged token is just anonymous
    r = await client.get("/api/v1/status", headers={"Authorization": f"Bearer {token}x"})
    assert r.headers["x-ratelimit-limit"] == "30"


async def test_sliding_window_weights_the_previous_window(services: Services) -> None:
    """Half-way through the next window, half of the previous window's hits still count."""
    import asyncio

    from limits import parse

    redis = make_redis(services.redis_url)
    limiter = RateLimiter(redis)
    item = parse("6 per 2 seconds")
    for _ in range(6):
        allowed, _ = await limiter._hit_redis(item, "sw", 1)
        assert allowed
    allowed, state = await limiter._hit_redis(item, "sw", 1)
    assert not allowed and state.remaining == 0
    seconds, micros = await redis.time()
    now_ms = seconds * 1000 + micros // 1000
    next_window = (now_ms // 2000 + 1) * 2000
    await asyncio.sleep((next_window + 1000 - now_ms) / 1000)  # the middle of the next window
    results = [(await limiter._hit_redis(item, "sw", 1))[0] for _ in range(4)]
    assert results == [True, True, True, False]  # ceil(6 * 0.5) = 3 still count
    await redis.aclose()
