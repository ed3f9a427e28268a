"""The session check without a database read per request, across two real `pull api` processes
sharing PostgreSQL and Redis: every revocation takes effect at once on the other process."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.identity import auth_cache
from pull.kit.db import commit
from tests.conftest import Services, start_api_process, stop_process

PASSWORD = "Correct-Horse-9-Battery"
BALANCE = "/trade-api/v2/portfolio/balance"


@pytest.fixture(scope="module")
def two_apis(services: Services) -> Iterator[tuple[str, str]]:
    procs: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for _ in range(2):
            proc, url = start_api_process(services, RATE_LIMIT_ENABLED="false")
            procs.append(proc)
            urls.append(url)
        yield urls[0], urls[1]
    finally:
        for proc in procs:
            stop_process(proc)


def _register(url: str) -> dict[str, Any]:
    r = httpx.post(
        f"{url}/api/auth/register",
        json={"email": f"cache-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _login(url: str, email: str) -> str:
    r = httpx.post(f"{url}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _check(url: str, token: str) -> int:
    r = httpx.post(
        f"{url}/api/auth/check", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return r.status_code


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _signed(key: rsa.RSAPrivateKey, key_id: str, method: str, path: str) -> dict[str, str]:
    ts = str(int(time.time() * 1000))
    sig = key.sign(
        (ts + method + path).encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )
    return {
        "KALSHI-ACCESS-KEY": key_id,
        "KALSHI-ACCESS-SIGNATURE": base64.b64encode(sig).decode(),
        "KALSHI-ACCESS-TIMESTAMP": ts,
    }


async def _cached(redis: Redis, user_id: str) -> list[bytes]:
    return [k async for k in redis.scan_iter(match=f"auth:{{{user_id}}}:[sk]:*")]


async def test_check_is_served_from_the_cache_not_the_database(
    two_apis: tuple[str, str], redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Proof that the check does not read PostgreSQL: a revocation written behind the
    application's back (no generation bump) is not seen until the entry dies or is bumped."""
    a, b = two_apis
    body = _register(a)
    token, uid = body["access_token"], body["user"]["id"]
    assert _check(b, token) == 200
    assert await _cached(redis, uid)
    async with sessionmaker() as s:
        await s.execute(
            text("UPDATE auth_sessions SET revoked_at = now() WHERE user_id = :u"), {"u": uid}
        )
        await s.commit()
    assert _check(a, token) == 200  # the cache answered
    await auth_cache.bump(redis, uuid.UUID(uid))  # what the outbox relay does
    assert _check(a, token) == 401
    assert _check(b, token) == 401


async def test_logout_takes_effect_at_once_on_the_other_process(
    two_apis: tuple[str, str], redis: Redis
) -> None:
    a, b = two_apis
    body = _register(a)
    token = body["access_token"]
    for _ in range(3):
        assert _check(a, token) == 200
        assert _check(b, token) == 200
    assert await _cached(redis, body["user"]["id"])
    r = httpx.post(f"{a}/api/auth/logout", headers=_bearer(token), timeout=30)
    assert r.status_code == 200, r.text
    assert _check(b, token) == 401
    assert _check(a, token) == 401


async def test_logout_all_and_password_change_end_other_sessions_at_once(
    two_apis: tuple[str, str],
) -> None:
    a, b = two_apis
    body = _register(a)
    email = body["user"]["email"]
    keep, other = body["access_token"], _login(b, email)
    assert _check(b, other) == 200 and _check(a, other) == 200
    r = httpx.post(
        f"{a}/api/auth/change-password",
        headers=_bearer(keep),
        json={"current_password": PASSWORD, "new_password": PASSWORD + "-2"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert _check(b, other) == 401
    assert _check(a, other) == 401
    assert _check(b, keep) == 200  # the session that changed it stays
    r = httpx.post(f"{b}/api/auth/logout-all", headers=_bearer(keep), timeout=30)
    assert r.status_code == 200, r.text
    assert _check(a, keep) == 401


async def test_session_revocation_and_reauthentication_refresh_the_answer(
    two_apis: tuple[str, str],
) -> None:
    a, b = two_apis
    body = _register(a)
    email, first = body["user"]["email"], body["access_token"]
    second = _login(a, email)
    assert _check(b, second) == 200
    sessions = httpx.get(f"{a}/api/auth/sessions", headers=_bearer(first), timeout=30).json()
    me = httpx.get(f"{b}/api/auth/me", headers=_bearer(first), timeout=30)
    assert me.status_code == 200
    others = [s["id"] for s in sessions if not s["current"]]
    assert len(others) == 1
    r = httpx.delete(f"{a}/api/auth/sessions/{others[0]}", headers=_bearer(first), timeout=30)
    assert r.status_code == 204, r.text
    assert _check(b, second) == 401
    assert _check(b, first) == 200


async def test_api_key_revocation_takes_effect_at_once_on_the_other_process(
    two_apis: tuple[str, str], redis: Redis
) -> None:
    a, b = two_apis
    body = _register(a)
    token, uid = body["access_token"], body["user"]["id"]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    r = httpx.post(
        f"{a}/api/v1/api-keys",
        headers=_bearer(token),
        json={"name": "bot", "public_key_pem": pem},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    key_id = r.json()["key_id"]
    for _ in range(3):
        for url in (a, b):
            got = httpx.get(f"{url}{BALANCE}", headers=_signed(key, key_id, "GET", BALANCE))
            assert got.status_code == 200, got.text
    assert any(b":k:" in k for k in await _cached(redis, uid))
    bad = _signed(key, key_id, "GET", BALANCE)
    bad["KALSHI-ACCESS-SIGNATURE"] = base64.b64encode(b"x" * 256).decode()
    assert httpx.get(f"{b}{BALANCE}", headers=bad).status_code == 401  # still verified
    r = httpx.delete(f"{a}/api/v1/api-keys/{key_id}", headers=_bearer(token), timeout=30)
    assert r.status_code in (200, 204), r.text
    got = httpx.get(f"{b}{BALANCE}", headers=_signed(key, key_id, "GET", BALANCE))
    assert got.status_code == 401


def test_with_redis_down_the_check_reads_the_database(
    services: Services, two_apis: tuple[str, str]
) -> None:
    """An API process whose Redis is unreachable still answers from PostgreSQL and never
    accepts a session after its logout."""
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    proc, url = start_api_process(services, RATE_LIMIT_ENABLED="false", REDIS_URL=dead)
    try:
        body = _register(two_apis[0])
        token = body["access_token"]
        assert _check(url, token) == 200
        assert _check(url, token) == 200
        r = httpx.post(f"{url}/api/auth/logout", headers=_bearer(token), timeout=30)
        assert r.status_code == 200, r.text
        assert _check(url, token) == 401
        assert _check(two_apis[1], token) == 401  # no entry was cached for it anywhere
    finally:
        stop_process(proc)


async def test_a_check_that_read_before_a_revocation_committed_cannot_cache_it(
    redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """The race the generation protocol closes, step by step: a reader takes the generation,
    reads the (still live) session, a revocation commits, the reader stores its answer: the
    stored answer is dead; and while a change is in flight nothing is served from the cache."""
    uid, sid = uuid.uuid4(), uuid.uuid4()
    key = auth_cache.session_key(uid, sid)
    before = await auth_cache.lookup(redis, key, uid)
    assert before.value is None and before.gen is not None
    async with sessionmaker() as s:
        s.info["redis"] = redis
        auth_cache.mark(s, uid)
        await s.flush()
        await auth_cache._before_commit(s)
        during = await auth_cache.lookup(redis, key, uid)
        assert during.value is None and during.gen is None  # in flight: read the database
        await s.rollback()  # (the outbox row is not the point here)
    await asyncio.sleep(0.2)  # the rollback's in-flight decrement runs on the loop
    await auth_cache.store(redis, key, {"user_id": str(uid)}, before.gen, 10)
    after = await auth_cache.lookup(redis, key, uid)
    assert after.value is None  # stamped with the generation before the change: dead
    assert after.gen is not None
    await auth_cache.store(redis, key, {"user_id": str(uid)}, after.gen, 10)
    assert (await auth_cache.lookup(redis, key, uid)).value is not None
    async with sessionmaker() as s:
        s.info["redis"] = redis
        auth_cache.mark(s, uid)
        await commit(s)
    assert (await auth_cache.lookup(redis, key, uid)).value is None
