"""The auth check's in-process level (pull.identity.local_auth) against the tests' real Redis:
an entry dies on its user's invalidation message, an answer made while a message came in is
not kept, a lost or silent subscription switches the level off (and clears it) until it has
resubscribed; and over HTTP a real `pull api` answers repeated checks without Redis."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from pull.identity import auth_cache
from pull.identity.local_auth import LocalAuthCache
from pull.kit.invalidation import LEASE_SECONDS, Invalidations
from tests.conftest import Services, start_api_process, stop_process


async def _until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


@pytest.fixture
async def local(redis: Redis) -> AsyncIterator[LocalAuthCache]:
    inv = Invalidations(redis)
    cache = LocalAuthCache(inv)
    inv.start()
    await _until(cache.live)
    yield cache
    await inv.stop()


async def test_an_entry_dies_with_its_users_message(local: LocalAuthCache, redis: Redis) -> None:
    uid, other = uuid.uuid4(), uuid.uuid4()
    key, kept = (
        auth_cache.session_key(uid, uuid.uuid4()),
        auth_cache.session_key(other, uuid.uuid4()),
    )
    local.put(key, uid, {"user_id": str(uid)}, local.token(uid))
    local.put(kept, other, {"user_id": str(other)}, local.token(other))
    assert local.get(key) is not None
    await auth_cache.bump(redis, uid)  # what every generation move publishes
    await _until(lambda: local.get(key) is None)
    assert local.get(kept) is not None  # only that user's entries


async def test_an_answer_made_while_a_message_came_in_is_not_kept(
    local: LocalAuthCache, redis: Redis
) -> None:
    uid = uuid.uuid4()
    key = auth_cache.session_key(uid, uuid.uuid4())
    token = local.token(uid)  # taken before the answer is looked up
    version = local._versions.get(uid, 0)
    await auth_cache.bump(redis, uid)  # a change of the user meanwhile
    await _until(lambda: local._versions.get(uid, 0) > version)
    local.put(key, uid, {"user_id": str(uid)}, token)
    assert local.get(key) is None
    local.put(key, uid, {"user_id": str(uid)}, local.token(uid))  # a fresh answer is kept
    assert local.get(key) is not None


async def test_a_lost_subscription_switches_the_level_off_and_clears_it(
    local: LocalAuthCache, redis: Redis
) -> None:
    uid = uuid.uuid4()
    key = auth_cache.session_key(uid, uuid.uuid4())
    local.put(key, uid, {"user_id": str(uid)}, local.token(uid))
    assert local.get(key) is not None
    await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    await _until(lambda: not local.live())
    assert local.get(key) is None
    assert local.token(uid) is None  # nothing made meanwhile can be kept
    await _until(local.live)  # resubscribed
    assert local.get(key) is None  # what was cached before is gone for good


async def test_a_silent_subscription_switches_the_level_off(
    local: LocalAuthCache, redis: Redis
) -> None:
    """Redis answers nothing (CLIENT PAUSE): no pong, so the lease runs out."""
    uid = uuid.uuid4()
    key = auth_cache.session_key(uid, uuid.uuid4())
    local.put(key, uid, {"user_id": str(uid)}, local.token(uid))
    pause_ms = int((LEASE_SECONDS + 2) * 1000)
    await redis.execute_command("CLIENT", "PAUSE", str(pause_ms), "ALL")
    started = time.monotonic()
    await _until(lambda: not local.live(), seconds=LEASE_SECONDS + 1.5)
    assert local.get(key) is None
    assert time.monotonic() - started < pause_ms / 1000  # off while Redis was still silent
    await _until(local.live)


@pytest.fixture(scope="module")
def api(services: Services) -> Iterator[str]:
    proc: subprocess.Popen[bytes]
    proc, url = start_api_process(services, RATE_LIMIT_ENABLED="false")
    try:
        yield url
    finally:
        stop_process(proc)


async def _evals(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(
        int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval")
    )


async def test_repeated_checks_pay_no_redis_round_trip(api: str, redis: Redis) -> None:
    r = httpx.post(
        f"{api}/api/auth/register",
        json={
            "email": f"local-{uuid.uuid4().hex[:10]}@example.com",
            "password": "Correct-Horse-9-Battery",
        },
        timeout=30,
    )
    assert r.status_code == 201, r.text
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    with httpx.Client(base_url=api, headers=headers, timeout=30) as c:
        for _ in range(3):  # warm: the first checks fill Redis and the process's level
            assert c.post("/api/auth/check").status_code == 200
        before = await _evals(redis)
        for _ in range(20):
            assert c.post("/api/auth/check").status_code == 200
        after = await _evals(redis)
        # a worker that had not seen this user yet may look it up once; nothing per request
        assert after - before <= 2, after - before
        assert c.post("/api/auth/logout").status_code == 200
        assert c.post("/api/auth/check").status_code == 401
