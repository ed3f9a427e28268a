"""Email verification, password reset and change, and the session list."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import UserFactory
from tests.identity.conftest import (
    PASSWORD,
    client_at,
    error_without_request_id,
    mails_to,
    sql,
    token_in,
)

NEW_PASSWORD = "Another-Strong-Pass-7"


async def test_verify_email_with_the_mailed_token(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    r = await client.post(
        "/api/auth/register", json={"email": "v@example.com", "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    mails = await mails_to(sessionmaker, "v@example.com", "verify_email")
    assert len(mails) == 1
    token = token_in(mails[0])
    # Stored hashed: the raw token is nowhere in the database except the mail itself.
    row = await sql(
        sessionmaker, "SELECT count(*) FROM one_time_tokens WHERE token_hash = :t", t=token
    )
    assert row.scalar_one() == 0

    ok = await client.post("/api/auth/verify-email", json={"token": token})
    assert ok.status_code == 200, ok.text
    assert ok.json()["email_verified"] is True
    assert (await client.get("/api/auth/me", headers=headers)).json()["email_verified"] is True
    again = await client.post("/api/auth/verify-email", json={"token": token})
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "INVALID_TOKEN"


async def test_verification_token_expires(
    app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with client_at(app) as c:
        await c.post("/api/auth/register", json={"email": "e@example.com", "password": PASSWORD})
        token = token_in((await mails_to(sessionmaker, "e@example.com", "verify_email"))[0])
        expiry = await sql(
            sessionmaker,
            "SELECT expires_at - created_at FROM one_time_tokens WHERE purpose = 'verify_email'",
        )
        assert expiry.scalar_one().total_seconds() == 24 * 3600
        await sql(sessionmaker, "UPDATE one_time_tokens SET expires_at = now()")
        r = await c.post("/api/auth/verify-email", json={"token": token})
        assert r.status_code == 401


async def test_resend_verification_cooldown_and_no_enumeration(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory(verified=False)
    async with client_at(app) as c:
        known = await c.post("/api/auth/resend-verification", json={"email": user.email})
        unknown = await c.post("/api/auth/resend-verification", json={"email": "no@example.com"})
        assert known.status_code == unknown.status_code == 200
        assert known.json() == unknown.json()
        # Registration already mailed one a moment ago: the 60 s cooldown holds the resend.
        assert len(await mails_to(sessionmaker, user.email, "verify_email")) == 1
        await sql(
            sessionmaker,
            "UPDATE one_time_tokens SET created_at = now() - interval '61 seconds'",
        )
        await c.post("/api/auth/resend-verification", json={"email": user.email})
        mails = await mails_to(sessionmaker, user.email, "verify_email")
        assert len(mails) == 2
        # Only the newest link works.
        first, second = token_in(mails[0]), token_in(mails[1])
        assert (await c.post("/api/auth/verify-email", json={"token": first})).status_code == 401
        assert (await c.post("/api/auth/verify-email", json={"token": second})).status_code == 200


async def test_forgot_and_reset_password(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory()
    async with client_at(app) as c:
        known = await c.post("/api/auth/forgot-password", json={"email": user.email.upper()})
        unknown = await c.post("/api/auth/forgot-password", json={"email": "nobody@example.com"})
        assert known.status_code == unknown.status_code == 200
        assert known.json() == unknown.json()
        assert await mails_to(sessionmaker, "nobody@example.com") == []
        mails = await mails_to(sessionmaker, user.email, "reset_password")
        assert len(mails) == 1
        token = token_in(mails[0])
        expiry = await sql(
            sessionmaker,
            "SELECT expires_at - created_at FROM one_time_tokens WHERE purpose = 'reset_password'",
        )
        assert expiry.scalar_one().total_seconds() == 3600

        weak = await c.post("/api/auth/reset-password", json={"token": token, "password": "weak"})
        assert weak.status_code == 422
        assert weak.json()["error"]["code"] == "WEAK_PASSWORD"
        ok = await c.post(
            "/api/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
        )
        assert ok.status_code == 200, ok.text
        # Every session is revoked, and the token is single-use.
        assert (await c.get("/api/auth/me", headers=user.headers)).status_code == 401
        refresh = await c.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
        assert refresh.status_code == 401
        reuse = await c.post(
            "/api/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
        )
        assert reuse.status_code == 401
        old = await c.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
        assert old.status_code == 401
        new = await c.post("/api/auth/login", json={"email": user.email, "password": NEW_PASSWORD})
        assert new.status_code == 200


async def test_reset_token_expires_after_an_hour(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory()
    async with client_at(app) as c:
        await c.post("/api/auth/forgot-password", json={"email": user.email})
        token = token_in((await mails_to(sessionmaker, user.email, "reset_password"))[0])
        await sql(sessionmaker, "UPDATE one_time_tokens SET expires_at = now()")
        r = await c.post(
            "/api/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
        )
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "INVALID_TOKEN"


async def test_reset_lifts_a_lockout(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory()
    for _ in range(5):
        async with client_at(app) as c:
            await c.post("/api/auth/login", json={"email": user.email, "password": "Wrong-pass-1"})
    async with client_at(app) as c:
        locked = await c.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
        assert locked.status_code == 401
        await c.post("/api/auth/forgot-password", json={"email": user.email})
        token = token_in((await mails_to(sessionmaker, user.email, "reset_password"))[0])
        await c.post("/api/auth/reset-password", json={"token": token, "password": NEW_PASSWORD})
        r = await c.post("/api/auth/login", json={"email": user.email, "password": NEW_PASSWORD})
        assert r.status_code == 200


async def test_change_password_revokes_other_sessions(
    app: FastAPI, user_factory: UserFactory
) -> None:
    user = await user_factory()
    async with client_at(app) as c:
        other = await c.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
        other_headers = {"Authorization": f"Bearer {other.json()['access_token']}"}

        wrong = await c.post(
            "/api/auth/change-password",
            headers=user.headers,
            json={"current_password": "Nope-nope-1", "new_password": NEW_PASSWORD},
        )
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "INVALID_CREDENTIALS"
        # A wrong current password does not end the caller's session.
        assert (await c.get("/api/auth/me", headers=user.headers)).status_code == 200
        weak = await c.post(
            "/api/auth/change-password",
            headers=user.headers,
            json={"current_password": PASSWORD, "new_password": "password"},
        )
        assert weak.status_code == 422

        ok = await c.post(
            "/api/auth/change-password",
            headers=user.headers,
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        )
        assert ok.status_code == 200, ok.text
        assert (await c.get("/api/auth/me", headers=user.headers)).status_code == 200
        assert (await c.get("/api/auth/me", headers=other_headers)).status_code == 401
        login = await c.post(
            "/api/auth/login", json={"email": user.email, "password": NEW_PASSWORD}
        )
        assert login.status_code == 200


async def test_sessions_list_and_revoke(
    client: httpx.AsyncClient, app: FastAPI, user_factory: UserFactory
) -> None:
    user = await user_factory()
    stranger = await user_factory()
    async with client_at(app, "127.9.9.9") as c:
        other = await c.post(
            "/api/auth/login",
            json={"email": user.email, "password": PASSWORD},
            headers={"User-Agent": "phone-app/1.0"},
        )
    other_headers = {"Authorization": f"Bearer {other.json()['access_token']}"}
    r = await client.get("/api/auth/sessions", headers=user.headers)
    assert r.status_code == 200
    items = r.json()
    assert len(items) == 2
    current = [s for s in items if s["current"]]
    assert len(current) == 1
    phone = next(s for s in items if not s["current"])
    assert phone["user_agent"] == "phone-app/1.0"
    assert phone["ip"] == "127.9.9.9"

    # Someone else's session id is a 404, not a revocation.
    foreign = await client.delete(f"/api/auth/sessions/{phone['id']}", headers=stranger.headers)
    assert foreign.status_code == 404
    assert (await client.get("/api/auth/me", headers=other_headers)).status_code == 200

    gone = await client.delete(f"/api/auth/sessions/{phone['id']}", headers=user.headers)
    assert gone.status_code == 204
    assert (await client.get("/api/auth/me", headers=other_headers)).status_code == 401
    assert len((await client.get("/api/auth/sessions", headers=user.headers)).json()) == 1
    again = await client.delete(f"/api/auth/sessions/{phone['id']}", headers=user.headers)
    assert again.status_code == 404


async def test_no_enumeration_on_login_resend_forgot(
    app: FastAPI, user_factory: UserFactory
) -> None:
    """Known and unknown emails get the same status and body on all three endpoints."""
    user = await user_factory(verified=False)
    for path, payload in (
        ("/api/auth/login", {"password": "Wrong-pass-1"}),
        ("/api/auth/resend-verification", {}),
        ("/api/auth/forgot-password", {}),
    ):
        async with client_at(app) as c:
            known = await c.post(path, json={"email": user.email, **payload})
            unknown = await c.post(path, json={"email": "ghost@example.com", **payload})
        assert known.status_code == unknown.status_code, path
        assert error_or_body(known) == error_or_body(unknown), path


def error_or_body(r: httpx.Response) -> object:
    return error_without_request_id(r) if r.status_code >= 400 else r.json()
