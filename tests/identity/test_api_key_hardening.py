"""API keys do not outlive a stolen session (issue 12 item 8): password change, password reset
and "log out everywhere" revoke them; creating one needs the password or a 2FA code within 5
minutes; a request signed with a key cannot create keys; everything is audited."""

from __future__ import annotations

import time
import uuid

import httpx
import pyotp
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import TestUser, UserFactory
from tests.identity.conftest import client_at, mails_to, sql, token_in
from tests.identity.test_api_keys import _pem, kalshi_headers

BALANCE = "/trade-api/v2/portfolio/balance"
NEW_PASSWORD = "Another-Horse-7-Staple"


async def _key(
    c: httpx.AsyncClient, user: TestUser, name: str = "bot"
) -> tuple[str, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    r = await c.post(
        "/api/v1/api-keys", headers=user.headers, json={"name": name, "public_key_pem": _pem(key)}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["key_id"]), key


async def _signed(c: httpx.AsyncClient, key_id: str, key: rsa.RSAPrivateKey) -> httpx.Response:
    return await c.get(BALANCE, headers=kalshi_headers(key, key_id, "GET", BALANCE))


async def _audit(
    maker: async_sessionmaker[AsyncSession], user_id: uuid.UUID, action: str
) -> list[dict[str, object]]:
    rows = await sql(
        maker,
        "SELECT resource, details FROM audit_log WHERE actor_id = :u AND action = :a ORDER BY id",
        u=user_id,
        a=action,
    )
    return [{"resource": r[0], "details": r[1]} for r in rows]


async def _revoked(c: httpx.AsyncClient, user: TestUser, headers: dict[str, str]) -> dict[str, str]:
    r = await c.get("/api/v1/api-keys", params={"include_revoked": "true"}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["items"], "keys are still listed with include_revoked"
    return {k["key_id"]: k["revoked_reason"] for k in r.json()["items"]}


async def test_password_change_revokes_every_api_key(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory()
    async with client_at(app) as c:
        key_id, key = await _key(c, user)
        assert (await _signed(c, key_id, key)).status_code == 200
        listed = (await c.get("/api/v1/api-keys", headers=user.headers)).json()["items"]
        assert listed[0]["last_used_at"] is not None  # listed with its last use
        r = await c.post(
            "/api/auth/change-password",
            headers=user.headers,
            json={"current_password": user.password, "new_password": NEW_PASSWORD},
        )
        assert r.status_code == 200, r.text
        r = await _signed(c, key_id, key)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "INVALID_SIGNATURE")
        assert await _revoked(c, user, user.headers) == {key_id: "password_change"}
        assert (await c.get("/api/v1/api-keys", headers=user.headers)).json()["items"] == []
    revokes = await _audit(sessionmaker, user.id, "api_key.revoke")
    assert revokes == [{"resource": f"api_key:{key_id}", "details": {"reason": "password_change"}}]
    change = await _audit(sessionmaker, user.id, "password.change")
    assert change[0]["details"] == {"sessions_revoked": 0, "api_keys_revoked": 1}


async def test_password_reset_revokes_every_api_key(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory()
    async with client_at(app) as c:
        first, k1 = await _key(c, user, "one")
        second, k2 = await _key(c, user, "two")
        assert (
            await c.post("/api/auth/forgot-password", json={"email": user.email})
        ).status_code == 200
        token = token_in((await mails_to(sessionmaker, user.email, "reset_password"))[-1])
        r = await c.post(
            "/api/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
        )
        assert r.status_code == 200, r.text
        for key_id, key in ((first, k1), (second, k2)):
            assert (await _signed(c, key_id, key)).status_code == 401
        login = await c.post(
            "/api/auth/login", json={"email": user.email, "password": NEW_PASSWORD}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert await _revoked(c, user, headers) == {
            first: "password_reset",
            second: "password_reset",
        }
    reset = await _audit(sessionmaker, user.id, "password.reset")
    assert reset[0]["details"] == {"sessions_revoked": 1, "api_keys_revoked": 2}


async def test_logout_everywhere_ends_every_session_and_api_key(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory()
    async with client_at(app) as c:
        key_id, key = await _key(c, user)
        other = await c.post(
            "/api/auth/login", json={"email": user.email, "password": user.password}
        )
        other_refresh = other.json()["refresh_token"]
        r = await c.post("/api/auth/logout-all", headers=user.headers)
        assert r.status_code == 200, r.text
        assert (await c.get("/api/auth/me", headers=user.headers)).status_code == 401
        r = await c.post("/api/auth/refresh", json={"refresh_token": other_refresh})
        assert r.status_code == 401
        assert (await _signed(c, key_id, key)).status_code == 401
        login = await c.post(
            "/api/auth/login", json={"email": user.email, "password": user.password}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert await _revoked(c, user, headers) == {key_id: "logout_all"}
    entry = await _audit(sessionmaker, user.id, "logout.all")
    assert entry[0]["details"] == {"sessions_revoked": 2, "api_keys_revoked": 1}
    assert len(await _audit(sessionmaker, user.id, "api_key.revoke")) == 1


async def _age_session(maker: async_sessionmaker[AsyncSession], user_id: uuid.UUID) -> None:
    """Test-only time travel: this user's sessions last proved a credential 6 minutes ago."""
    await sql(
        maker,
        "UPDATE auth_sessions SET authenticated_at = now() - interval '6 minutes' "
        "WHERE user_id = :u",
        u=user_id,
    )


async def test_creating_a_key_needs_recent_authentication(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory(totp=True)
    assert user.totp_secret
    pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    body = {"name": "bot", "public_key_pem": pem}
    async with client_at(app) as c:
        await _age_session(sessionmaker, user.id)
        r = await c.post("/api/v1/api-keys", headers=user.headers, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "RECENT_AUTH_REQUIRED")
        # Rotating the refresh token is not authentication.
        pair = (
            await c.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
        ).json()
        rotated = {"Authorization": f"Bearer {pair['access_token']}"}
        r = await c.post("/api/v1/api-keys", headers=rotated, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "RECENT_AUTH_REQUIRED")
        # A wrong password is refused and counted as a failed login.
        r = await c.post(
            "/api/auth/reauthenticate", headers=rotated, json={"password": "Wrong-1-pass"}
        )
        assert (r.status_code, r.json()["error"]["code"]) == (401, "INVALID_CREDENTIALS")
        failures = await sql(
            sessionmaker, "SELECT failed_login_count FROM users WHERE id = :u", u=user.id
        )
        assert failures.scalar_one() == 1
        r = await c.post("/api/auth/reauthenticate", headers=rotated, json={})
        assert r.status_code == 422
        # The password proves it...
        r = await c.post(
            "/api/auth/reauthenticate", headers=rotated, json={"password": user.password}
        )
        assert r.status_code == 200, r.text
        assert (await c.post("/api/v1/api-keys", headers=rotated, json=body)).status_code == 201
        # ...and so does a 2FA code (the next step: enrolment spent the current one).
        await _age_session(sessionmaker, user.id)
        code = pyotp.TOTP(user.totp_secret).at(time.time() + 30)
        r = await c.post("/api/auth/reauthenticate", headers=rotated, json={"totp_code": code})
        assert r.status_code == 200, r.text
        assert (await c.post("/api/v1/api-keys", headers=rotated, json=body)).status_code == 201
    refused = await _audit(sessionmaker, user.id, "api_key.create_refused")
    assert [e["details"] for e in refused] == [{"reason": "not_recently_authenticated"}] * 2
    methods = [e["details"] for e in await _audit(sessionmaker, user.id, "reauth.success")]
    assert methods == [{"method": "password"}, {"method": "totp"}]
    assert len(await _audit(sessionmaker, user.id, "reauth.failure")) == 1
    assert len(await _audit(sessionmaker, user.id, "api_key.create")) == 2


async def test_a_signed_request_cannot_create_keys(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory()
    async with client_at(app) as c:
        key_id, key = await _key(c, user)
        pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        for path, body in (
            ("/trade-api/v2/api_keys", {"name": "more", "public_key": pem}),
            ("/trade-api/v2/api_keys/generate", {"name": "more"}),
        ):
            r = await c.post(path, json=body, headers=kalshi_headers(key, key_id, "POST", path))
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "SIGNED_REQUEST_CANNOT_CREATE_KEYS"
        listed = (await c.get("/api/v1/api-keys", headers=user.headers)).json()["items"]
        assert [k["key_id"] for k in listed] == [key_id]
    # Both count in Kalshi's write tier (RSA generation is not a read), 5 units each.
    written = [k async for k in app.state.redis.scan_iter(f"rl:kalshi_write:user:{user.id}:*")]
    assert written
    assert sum([int(await app.state.redis.get(k)) for k in written]) == 10
    refused = await _audit(sessionmaker, user.id, "api_key.create_refused")
    assert [e["details"] for e in refused] == [{"reason": "signed_request"}] * 2


async def test_a_login_is_recent_authentication(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory()
    await _age_session(sessionmaker, user.id)
    async with client_at(app) as c:
        login = await c.post(
            "/api/auth/login", json={"email": user.email, "password": user.password}
        )
        fresh = TestUser(
            **{
                **user.__dict__,
                "headers": {"Authorization": f"Bearer {login.json()['access_token']}"},
            }
        )
        await _key(c, fresh)
