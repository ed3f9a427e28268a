"""Registration, login, refresh rotation, logout, check, me, and the dependency contract."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.app import create_app
from pull.config import Settings
from pull.identity import service
from pull.identity.deps import ActiveUser, AdminUser, CurrentUser
from pull.identity.service import REFERRAL_ALPHABET
from pull.kit.db import commit as db_commit
from tests.conftest import (
    AppRunner,
    Services,
    UserFactory,
    asgi_client,
    enable_totp,
    make_settings,
)
from tests.identity.conftest import PASSWORD, client_at, sql


async def test_register_returns_user_and_tokens(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/auth/register",
        json={"email": "  Ada.Lovelace@Example.COM ", "password": PASSWORD, "display_name": "Ada"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["access_token"] and body["refresh_token"]
    user = body["user"]
    assert user["email"] == "ada.lovelace@example.com"
    assert user["display_name"] == "Ada"
    assert user["role"] == "user" and user["status"] == "active"
    assert user["email_verified"] is False and user["phone_verified"] is False
    assert len(user["referral_code"]) == 8
    assert set(user["referral_code"]) <= set(REFERRAL_ALPHABET)
    assert not set(user["referral_code"]) & set("0O1I")
    assert "password" not in r.text and "password_hash" not in r.text
    me = await client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


async def test_email_is_normalized_nfkc_and_unique(client: httpx.AsyncClient) -> None:
    # Fullwidth letters fold to ASCII under NFKC, so this is the same address.
    first = await client.post(
        "/api/auth/register", json={"email": "bob@example.com", "password": PASSWORD}
    )
    assert first.status_code == 201
    for variant in ("BOB@example.com", " bob@EXAMPLE.com", "\uff42\uff4f\uff42@example.com"):
        r = await client.post("/api/auth/register", json={"email": variant, "password": PASSWORD})
        assert r.status_code == 409, variant
        assert r.json()["error"]["code"] == "EMAIL_TAKEN"


@pytest.mark.parametrize(
    "password",
    [
        "Sh0rt",  # too short
        "alllowercase1",  # no upper
        "ALLUPPERCASE1",  # no lower
        "NoDigitsHere",  # no digit
        "Password1",  # common
        "Qwerty123",  # common
        "A1" + "a" * 127,  # too long
    ],
)
async def test_weak_passwords_are_refused(app: FastAPI, password: str) -> None:
    async with client_at(app) as c:
        r = await c.post(
            "/api/auth/register", json={"email": "weak@example.com", "password": password}
        )
    assert r.status_code == 422, password
    assert r.json()["error"]["code"] == "WEAK_PASSWORD"


async def test_referral_code(client: httpx.AsyncClient, user_factory: UserFactory) -> None:
    referrer = await user_factory()
    code = (await client.get("/api/auth/me", headers=referrer.headers)).json()["referral_code"]
    bad = await client.post(
        "/api/auth/register",
        json={"email": "x@example.com", "password": PASSWORD, "referral_code": "ZZZZZZZZ"},
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "INVALID_REFERRAL_CODE"
    good = await client.post(
        "/api/auth/register",
        json={"email": "x@example.com", "password": PASSWORD, "referral_code": code.lower()},
    )
    assert good.status_code == 201
    assert good.json()["user"]["referred_by_id"] == str(referrer.id)


async def test_login_and_no_enumeration(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    ok = await client.post(
        "/api/auth/login", json={"email": user.email.upper(), "password": PASSWORD}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["user"]["id"] == str(user.id)
    assert ok.json()["access_token"] != user.access_token

    wrong = await client.post(
        "/api/auth/login", json={"email": user.email, "password": "Nope-123x"}
    )
    unknown = await client.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": "Nope-123x"}
    )
    assert wrong.status_code == unknown.status_code == 401
    w, u = wrong.json(), unknown.json()
    assert w["error"].pop("request_id") != u["error"].pop("request_id")
    assert w == u
    assert w["error"]["code"] == "INVALID_CREDENTIALS"
    assert wrong.headers.keys() - {"x-request-id"} == unknown.headers.keys() - {"x-request-id"}


async def test_unknown_email_costs_a_hash_verification(services: Services) -> None:
    """At expensive argon2 parameters an unknown email takes as long as a wrong password."""
    import time

    app = create_app(make_settings(services, ARGON2_TIME_COST=3, ARGON2_MEMORY_COST=65536))
    async with AppRunner(app), client_at(app) as c:
        await c.post("/api/auth/register", json={"email": "t@example.com", "password": PASSWORD})

        async def timed(email: str) -> float:
            start = time.perf_counter()
            r = await c.post("/api/auth/login", json={"email": email, "password": "Wrong-pass-1"})
            assert r.status_code == 401
            return time.perf_counter() - start

        known = min([await timed("t@example.com") for _ in range(3)])
        unknown = min([await timed("nobody@example.com") for _ in range(3)])
    # A hash at these parameters takes tens of milliseconds; skipping it would take ~1 ms.
    assert known > 0.02
    assert unknown > known * 0.6, (known, unknown)


async def test_suspended_and_closed_accounts_are_refused(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await user_factory()
    async with sessionmaker() as s:
        await service.set_status(session=s, user_id=user.id, status="suspended", reason="test")
        await s.commit()
    r = await client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "ACCOUNT_DISABLED"
    # Suspension ended the existing session too.
    assert (await client.get("/api/auth/me", headers=user.headers)).status_code == 401
    # A wrong password still answers like any wrong password (no status disclosure).
    r = await client.post("/api/auth/login", json={"email": user.email, "password": "Wrong-pw-1"})
    assert r.json()["error"]["code"] == "INVALID_CREDENTIALS"


async def test_restricted_may_log_in_and_read_but_not_act(
    services: Services,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    app = create_app(make_settings(services))

    @app.post("/test/money")
    async def money(user: ActiveUser) -> dict[str, str]:
        return {"ok": str(user.id)}

    async with AppRunner(app), asgi_client(app) as c:
        transport_user = await _register(c)
        assert (await c.post("/test/money", headers=transport_user["headers"])).status_code == 200
        async with sessionmaker() as s:
            await service.restrict_user(
                session=s, user_id=uuid.UUID(transport_user["id"]), reason="kyc"
            )
            await s.commit()
        login = await c.post(
            "/api/auth/login", json={"email": transport_user["email"], "password": PASSWORD}
        )
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert (await c.get("/api/auth/me", headers=headers)).json()["status"] == "restricted"
        r = await c.post("/test/money", headers=headers)
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "ACCOUNT_RESTRICTED"


async def _register(c: httpx.AsyncClient) -> dict[str, object]:
    email = f"u-{uuid.uuid4().hex[:8]}@example.com"
    r = await c.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    b = r.json()
    return {
        "id": b["user"]["id"],
        "email": email,
        "headers": {"Authorization": f"Bearer {b['access_token']}"},
    }


async def test_refresh_rotates_and_reuse_revokes_family(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    first = await client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert first.status_code == 200, first.text
    pair = first.json()
    assert pair["refresh_token"] != user.refresh_token
    assert pair["token_type"] == "Bearer"
    new_headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (await client.get("/api/auth/me", headers=new_headers)).status_code == 200

    # The old refresh token again: the whole family is revoked.
    reuse = await client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert reuse.status_code == 401
    assert reuse.json()["error"]["code"] == "TOKEN_REUSED"
    after = await client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert after.status_code == 401
    assert (await client.get("/api/auth/me", headers=new_headers)).status_code == 401
    assert (await client.get("/api/auth/me", headers=user.headers)).status_code == 401


async def test_refresh_with_garbage_is_401(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/auth/refresh", json={"refresh_token": "not-a-token"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "INVALID_TOKEN"


async def test_refresh_chain_keeps_working(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    token = user.refresh_token
    for _ in range(3):
        r = await client.post("/api/auth/refresh", json={"refresh_token": token})
        assert r.status_code == 200
        token = r.json()["refresh_token"]


async def test_logout_kills_access_token_at_once(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    other = await client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    other_headers = {"Authorization": f"Bearer {other.json()['access_token']}"}
    assert (await client.post("/api/auth/check", headers=user.headers)).status_code == 200
    out = await client.post("/api/auth/logout", headers=user.headers)
    assert out.status_code == 200
    r = await client.post("/api/auth/check", headers=user.headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "INVALID_TOKEN"
    assert r.headers["www-authenticate"] == "Bearer"
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 401
    # Other sessions of the same user are untouched.
    assert (await client.get("/api/auth/me", headers=other_headers)).status_code == 200


async def test_check(client: httpx.AsyncClient, user_factory: UserFactory) -> None:
    user = await user_factory()
    r = await client.post("/api/auth/check", headers=user.headers)
    assert r.status_code == 200
    assert r.json() == {"authenticated": True, "user_id": str(user.id)}
    anon = await client.post("/api/auth/check")
    assert anon.status_code == 401
    assert anon.json()["error"]["code"] == "UNAUTHORIZED"
    assert anon.json()["error"]["request_id"] == anon.headers["x-request-id"]


async def test_me_patch(client: httpx.AsyncClient, user_factory: UserFactory) -> None:
    user = await user_factory(verified=True)
    me = (await client.get("/api/auth/me", headers=user.headers)).json()
    assert me["email_verified"] is True and me["phone_verified"] is True
    r = await client.patch(
        "/api/auth/me", headers=user.headers, json={"display_name": "New", "phone": "+14155550100"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["display_name"] == "New"
    assert r.json()["phone"] == "+14155550100"
    assert r.json()["phone_verified"] is False  # a new number needs verifying again
    bad = await client.patch("/api/auth/me", headers=user.headers, json={"role": "admin"})
    assert bad.status_code == 422
    bad_phone = await client.patch("/api/auth/me", headers=user.headers, json={"phone": "12"})
    assert bad_phone.status_code == 422
    assert (await client.get("/api/auth/me", headers=user.headers)).json()["role"] == "user"


async def test_user_factory_flags(
    user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    plain = await user_factory(verified=False)
    admin = await user_factory(admin=True)
    async with sessionmaker() as s:
        p = await service.get_user(session=s, user_id=plain.id)
        a = await service.get_user(session=s, user_id=admin.id)
    assert p is not None and a is not None
    assert p.role == "user" and not p.email_verified and not p.phone_verified
    assert a.role == "admin" and a.email_verified and a.phone_verified
    assert a.totp_enabled and admin.totp_secret and not p.totp_enabled
    assert admin.headers == {"Authorization": f"Bearer {admin.access_token}"}


async def test_admin_dependency(services: Services, settings: Settings) -> None:
    app = create_app(make_settings(services))

    @app.get("/test/admin")
    async def admin_only(user: AdminUser) -> dict[str, str]:
        return {"admin": str(user.id)}

    @app.get("/test/whoami")
    async def whoami(user: CurrentUser) -> dict[str, str | None]:
        return {"id": str(user.id), "role": user.role, "sid": str(user.session_id)}

    async with AppRunner(app), asgi_client(app) as c:
        reg = await _register(c)
        r = await c.get("/test/admin", headers=reg["headers"])
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "FORBIDDEN"
        assert (await c.get("/test/admin")).status_code == 401
        maker = app.state.sessionmaker
        async with maker() as s:
            await service.set_role(session=s, user_id=uuid.UUID(str(reg["id"])), role="admin")
            # the unit of work's own commit: its before-commit hook tells every process's auth
            # cache before the change commits (a bare session.commit() tells them only after,
            # from a task, so the next request could still be answered from the cache)
            await db_commit(s)
        # An admin without two-factor authentication is refused until it is on.
        r = await c.get("/test/admin", headers=reg["headers"])
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "ADMIN_2FA_REQUIRED"
        await enable_totp(c, reg["headers"])  # type: ignore[arg-type]
        # Role and 2FA are read from the database on every request: no new token needed.
        assert (await c.get("/test/admin", headers=reg["headers"])).status_code == 200
        who = (await c.get("/test/whoami", headers=reg["headers"])).json()
        assert who["role"] == "admin" and who["sid"] != "None"


async def test_role_is_a_column_only(client: httpx.AsyncClient) -> None:
    """A company-looking email gives no power (the old system made those admins)."""
    r = await client.post(
        "/api/auth/register", json={"email": "ceo@pull.com", "password": PASSWORD}
    )
    assert r.status_code == 201
    assert r.json()["user"]["role"] == "user"


async def test_sessions_touch_last_used(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await user_factory()
    await sql(
        sessionmaker,
        "UPDATE auth_sessions SET last_used_at = now() - interval '1 hour' WHERE user_id = :u",
        u=user.id,
    )
    assert (await client.get("/api/auth/me", headers=user.headers)).status_code == 200
    row = await sql(
        sessionmaker,
        "SELECT now() - last_used_at < interval '1 minute' FROM auth_sessions WHERE user_id = :u",
        u=user.id,
    )
    assert row.scalar_one() is True


async def test_login_rehashes_when_argon2_parameters_change(
    services: Services,
    app: FastAPI,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await user_factory()  # hashed at the test parameters: t=1, m=1024
    stored = "SELECT password_hash FROM users WHERE id = :u"
    before = (await sql(sessionmaker, stored, u=user.id)).scalar_one()
    assert before.startswith("$argon2id$v=19$m=1024,t=1,p=1$")

    stronger = create_app(make_settings(services, ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=2048))
    async with AppRunner(stronger), client_at(stronger) as c:
        wrong = await c.post("/api/auth/login", json={"email": user.email, "password": "Nope-123x"})
        assert wrong.status_code == 401
        assert (await sql(sessionmaker, stored, u=user.id)).scalar_one() == before
        ok = await c.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
        assert ok.status_code == 200
    after = (await sql(sessionmaker, stored, u=user.id)).scalar_one()
    assert after.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    # Any hash verifies under any configured parameters (argon2 reads them from the hash).
    async with client_at(app) as c:
        again = await c.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
        assert again.status_code == 200
