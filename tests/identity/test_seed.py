"""The `pull dev` demo accounts: idempotent, and the README's passwords work."""

from __future__ import annotations

import pyotp
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.identity.seed import DEMO_ADMIN, DEMO_ADMIN_TOTP_SECRET, DEMO_USER, seed_identity
from pull.kit.db import session_scope
from pull.seed import seeders
from tests.identity.conftest import client_at, sql


async def test_demo_accounts(
    app: FastAPI, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert seed_identity in seeders()
    for _ in range(2):  # a second run changes nothing
        async with session_scope(sessionmaker) as s:
            await seed_identity(s, settings)
    count = await sql(sessionmaker, "SELECT count(*) FROM users")
    assert count.scalar_one() == 2
    for email, password, _, role, _ in (DEMO_ADMIN, DEMO_USER):
        body = {"email": email, "password": password}
        if role == "admin":  # admin routes need 2FA: the demo admin has it on
            body["totp_code"] = pyotp.TOTP(DEMO_ADMIN_TOTP_SECRET).now()
        async with client_at(app) as c:
            r = await c.post("/api/auth/login", json=body)
            assert r.status_code == 200, r.text
            user = r.json()["user"]
            assert user["role"] == role
            assert user["email_verified"] and user["phone_verified"]
            assert user["totp_enabled"] is (role == "admin")
            if role == "admin":
                token = r.json()["access_token"]
                trial = await c.get(
                    "/api/admin/ledger/trial-balance", headers={"Authorization": f"Bearer {token}"}
                )
                assert trial.status_code == 200, trial.text
