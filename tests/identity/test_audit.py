"""The audit log: every security event recorded, append-only, and never a secret in it."""

from __future__ import annotations

import json
import time

import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.identity import service
from tests.conftest import UserFactory
from tests.identity.conftest import PASSWORD, client_at, mails_to, sql, token_in

NEW_PASSWORD = "Brand-New-Secret-42"


async def test_security_events_are_recorded_without_secrets(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory()
    secrets_seen: list[str] = [PASSWORD, NEW_PASSWORD, user.access_token, user.refresh_token]
    async with client_at(app, "127.7.7.7") as c:
        ua = {"User-Agent": "audit-test/1"}
        bad = await c.post(
            "/api/auth/login", json={"email": user.email, "password": "Wrong-pass-9"}, headers=ua
        )
        request_id = bad.headers["x-request-id"]
        login = await c.post(
            "/api/auth/login", json={"email": user.email, "password": PASSWORD}, headers=ua
        )
        pair = login.json()
        secrets_seen += [pair["access_token"], pair["refresh_token"]]
        headers = {"Authorization": f"Bearer {pair['access_token']}"}

        rotated = await c.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        secrets_seen += [rotated.json()["refresh_token"]]
        await c.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})  # reuse

        setup = await c.post("/api/auth/2fa/setup", headers=user.headers)
        secret = setup.json()["secret"]
        code = pyotp.TOTP(secret).at(time.time())
        enabled = await c.post("/api/auth/2fa/enable", headers=user.headers, json={"code": code})
        recovery = enabled.json()["recovery_codes"]
        secrets_seen += [secret, code, *recovery]
        await c.post("/api/auth/2fa/disable", headers=user.headers, json={"code": recovery[0]})

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        wrong = "Wrong-reauth-7"
        async with client_at(app) as other_ip:  # the auth class allows 10 per IP
            for password in (wrong, PASSWORD):
                await other_ip.post(
                    "/api/auth/reauthenticate", headers=user.headers, json={"password": password}
                )
        secrets_seen += [wrong, PASSWORD]
        created = await c.post(
            "/api/v1/api-keys", headers=user.headers, json={"name": "k", "public_key_pem": pem}
        )
        await c.delete(f"/api/v1/api-keys/{created.json()['key_id']}", headers=user.headers)

        await c.post(
            "/api/auth/change-password",
            headers=user.headers,
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        )
        await c.post("/api/auth/forgot-password", json={"email": user.email})
        reset_token = token_in((await mails_to(sessionmaker, user.email, "reset_password"))[0])
        secrets_seen.append(reset_token)
        await c.post(
            "/api/auth/reset-password", json={"token": reset_token, "password": PASSWORD + "x"}
        )
        relog = await c.post(
            "/api/auth/login", json={"email": user.email, "password": PASSWORD + "x"}
        )
        await c.post(
            "/api/auth/logout",
            headers={"Authorization": f"Bearer {relog.json()['access_token']}"},
        )
        async with client_at(app) as other_ip:
            again = await other_ip.post(
                "/api/auth/login", json={"email": user.email, "password": PASSWORD + "x"}
            )
            await other_ip.post(
                "/api/auth/logout-all",
                headers={"Authorization": f"Bearer {again.json()['access_token']}"},
            )
        del headers

    async with sessionmaker() as s:
        entries = await service.audit_entries(session=s, actor_id=user.id, limit=500)
    actions = [e["action"] for e in entries]
    for expected in (
        "user.register",
        "login.failure",
        "login.success",
        "refresh.reuse",
        "2fa.setup",
        "2fa.enable",
        "2fa.disable",
        "api_key.create",
        "api_key.revoke",
        "password.change",
        "password.reset_requested",
        "password.reset",
        "logout",
        "reauth.failure",
        "reauth.success",
        "logout.all",
    ):
        assert expected in actions, expected

    failure = next(
        e
        for e in entries
        if e["action"] == "login.failure" and e["details"]["reason"] == "password"
    )
    assert failure["ip"] == "127.7.7.7"
    assert failure["user_agent"] == "audit-test/1"
    assert failure["request_id"] == request_id
    assert failure["occurred_at"] is not None

    # Nothing secret anywhere in the log, in any column.
    dump = (await sql(sessionmaker, "SELECT row_to_json(a)::text FROM audit_log a")).scalars().all()
    text = "\n".join(dump)
    for secret_value in secrets_seen:
        assert secret_value not in text
        assert secret_value.replace("-", "") not in text
    assert "password_hash" not in text
    assert json.loads(dump[0])  # real rows were read


async def test_unknown_email_failures_are_logged_without_actor(
    app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with client_at(app) as c:
        await c.post("/api/auth/login", json={"email": "who@example.com", "password": "Abc-12345"})
    rows = (
        await sql(
            sessionmaker,
            "SELECT actor_id, details FROM audit_log WHERE action = 'login.failure'",
        )
    ).all()
    assert len(rows) == 1
    assert rows[0][0] is None
    assert rows[0][1] == {"reason": "unknown_email", "email": "who@example.com"}


async def test_audit_log_is_append_only(
    user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await user_factory()
    for statement in (
        "UPDATE audit_log SET action = 'forged'",
        "DELETE FROM audit_log",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            await sql(sessionmaker, statement)
    count = (await sql(sessionmaker, "SELECT count(*) FROM audit_log")).scalar_one()
    assert count >= 1
