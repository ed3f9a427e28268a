"""Progressive lockout, the auth rate limits, and life without Redis."""

from __future__ import annotations

import datetime as dt

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull import devstack
from pull.app import create_app
from pull.kit.ratelimit import LIMITS, RateClass
from tests.conftest import AppRunner, Services, UserFactory, make_settings
from tests.identity.conftest import (
    PASSWORD,
    client_at,
    error_without_request_id,
    mails_to,
    sql,
)

WRONG = "Wrong-Password-1"


async def _login(app: FastAPI, email: str, password: str) -> httpx.Response:
    async with client_at(app) as c:  # a new IP each time: only the account limit applies
        return await c.post("/api/auth/login", json={"email": email, "password": password})


async def _locked_until(maker: async_sessionmaker[AsyncSession], email: str) -> dt.datetime | None:
    row = await sql(maker, "SELECT locked_until FROM users WHERE email = :e", e=email)
    value: dt.datetime | None = row.scalar_one()
    return value


async def test_lockout_after_five_failures_then_progressive(
    app: FastAPI,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
) -> None:
    user = await user_factory()
    unknown_body = error_without_request_id(await _login(app, "ghost@example.com", WRONG))
    for _ in range(5):
        r = await _login(app, user.email, WRONG)
        assert r.status_code == 401
    locked = await _locked_until(sessionmaker, user.email)
    assert locked is not None
    minutes = (locked - dt.datetime.now(dt.UTC)).total_seconds() / 60
    assert 14 < minutes <= 15

    # Locked: even the right password is refused, with the very body of a wrong one, so a
    # lock tells an attacker nothing (the owner learns of it by email).
    r = await _login(app, user.email, PASSWORD)
    assert r.status_code == 401
    assert error_without_request_id(r) == unknown_body
    mails = await mails_to(sessionmaker, user.email, "account_locked")
    assert len(mails) == 1 and "locked until" in mails[0].body

    # Time passes: the lock expires (and the rate-limit window with it); failures keep
    # counting, and the next lock is twice as long.
    await redis.flushdb()
    await sql(
        sessionmaker,
        "UPDATE users SET locked_until = now() - interval '1 second' WHERE email = :e",
        e=user.email,
    )
    for _ in range(4):
        assert (await _login(app, user.email, WRONG)).status_code == 401
    assert await _locked_until(sessionmaker, user.email) < dt.datetime.now(dt.UTC)  # type: ignore[operator]
    assert (await _login(app, user.email, WRONG)).status_code == 401  # the 10th failure
    locked = await _locked_until(sessionmaker, user.email)
    assert locked is not None
    minutes = (locked - dt.datetime.now(dt.UTC)).total_seconds() / 60
    assert 29 < minutes <= 30


async def test_success_resets_the_failure_count(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory()
    for _ in range(4):
        assert (await _login(app, user.email, WRONG)).status_code == 401
    assert (await _login(app, user.email, PASSWORD)).status_code == 200
    for _ in range(4):
        assert (await _login(app, user.email, WRONG)).status_code == 401
    assert (await _login(app, user.email, PASSWORD)).status_code == 200
    row = await sql(
        sessionmaker, "SELECT failed_login_count FROM users WHERE email = :e", e=user.email
    )
    assert row.scalar_one() == 0


async def test_429_per_ip_on_auth_routes(app: FastAPI) -> None:
    limit = LIMITS[RateClass.auth].amount
    assert limit == 10
    async with client_at(app) as c:
        for i in range(limit):
            r = await c.post(
                "/api/auth/login", json={"email": f"n{i}@example.com", "password": WRONG}
            )
            assert r.status_code == 401
        r = await c.post("/api/auth/login", json={"email": "n@example.com", "password": WRONG})
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "RATE_LIMITED"
        assert int(r.headers["retry-after"]) > 0
        # The same limit class covers the other credential endpoints.
        r = await c.post("/api/auth/forgot-password", json={"email": "n@example.com"})
        assert r.status_code == 429


async def test_429_per_account_across_ips(app: FastAPI) -> None:
    """Spreading guesses over many addresses does not get around the per-account limit."""
    for _ in range(10):
        assert (await _login(app, "target@example.com", WRONG)).status_code == 401
    r = await _login(app, "target@example.com", WRONG)
    assert r.status_code == 429
    # Another account from the same kind of fresh address is not affected.
    assert (await _login(app, "other@example.com", WRONG)).status_code == 401


async def test_login_and_reads_work_with_redis_stopped(services: Services) -> None:
    """Redis is a cache and a counter here, never the source of truth for sessions."""
    redis_service, redis_url = devstack.start_redis(
        services.data_dir / "identity-redis", devstack.free_port()
    )
    try:
        app = create_app(make_settings(services, REDIS_URL=redis_url))
        async with AppRunner(app), client_at(app) as c:
            reg = await c.post(
                "/api/auth/register", json={"email": "r@example.com", "password": PASSWORD}
            )
            assert reg.status_code == 201
            headers = {"Authorization": f"Bearer {reg.json()['access_token']}"}
            redis_service.stop()

            assert (await c.get("/api/auth/me", headers=headers)).status_code == 200
            login = await c.post(
                "/api/auth/login", json={"email": "r@example.com", "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            fresh = {"Authorization": f"Bearer {login.json()['access_token']}"}
            assert (await c.get("/api/auth/me", headers=fresh)).status_code == 200
            assert (await c.post("/api/auth/check", headers=fresh)).status_code == 200
            refreshed = await c.post(
                "/api/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
            )
            assert refreshed.status_code == 200
            # Logout still takes effect at once without Redis.
            assert (await c.post("/api/auth/logout", headers=fresh)).status_code == 200
            assert (await c.get("/api/auth/me", headers=fresh)).status_code == 401
            # And the auth limit still holds, counted in process memory meanwhile.
            codes = [
                (
                    await c.post(
                        "/api/auth/login", json={"email": "r@example.com", "password": WRONG}
                    )
                ).status_code
                for _ in range(10)
            ]
            assert codes[-1] == 429
    finally:
        redis_service.stop()
