"""Two-factor authentication: enrolment, login with TOTP or recovery code, disable."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import httpx
import pyotp
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.identity import totp
from pull.kit.crypto import FieldCipher
from tests.conftest import TestUser, UserFactory
from tests.identity.conftest import PASSWORD, client_at, sql


def _code(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + offset_steps * 30)


async def _enable(c: httpx.AsyncClient, user: TestUser) -> tuple[str, list[str]]:
    setup = await c.post("/api/auth/2fa/setup", headers=user.headers)
    assert setup.status_code == 200, setup.text
    uri = setup.json()["otpauth_uri"]
    parsed = urlparse(uri)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp"
    secret = parse_qs(parsed.query)["secret"][0]
    assert secret == setup.json()["secret"]
    assert parse_qs(parsed.query)["issuer"] == ["PULL"]
    enable = await c.post(
        "/api/auth/2fa/enable", headers=user.headers, json={"code": _code(secret)}
    )
    assert enable.status_code == 200, enable.text
    codes = enable.json()["recovery_codes"]
    return secret, codes


async def _login(c: httpx.AsyncClient, user: TestUser, code: str | None) -> httpx.Response:
    body: dict[str, str] = {"email": user.email, "password": PASSWORD}
    if code is not None:
        body["totp_code"] = code
    return await c.post("/api/auth/login", json=body)


async def test_enable_and_login_with_totp(
    app: FastAPI,
    user_factory: UserFactory,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await user_factory()
    async with client_at(app) as c:
        secret, codes = await _enable(c, user)
        assert len(codes) == 10 and len(set(codes)) == 10
        me = await c.get("/api/auth/me", headers=user.headers)
        assert me.json()["totp_enabled"] is True

        # The secret is stored encrypted, and only the digests of recovery codes are stored.
        enc = (await sql(sessionmaker, "SELECT totp_secret_enc FROM users")).scalar_one()
        assert secret not in enc
        assert FieldCipher(settings.field_encryption_keys).decrypt(enc) == secret
        hashes = (await sql(sessionmaker, "SELECT code_hash FROM recovery_codes")).scalars().all()
        assert len(hashes) == 10 and not {c.replace("-", "") for c in codes} & set(hashes)

        missing = await _login(c, user, None)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "TOTP_REQUIRED"
        wrong = await _login(c, user, "000000" if _code(secret) != "000000" else "111111")
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "INVALID_TOTP"
        # A code from the next step (clock drift) is accepted...
        ok = await _login(c, user, _code(secret, 1))
        assert ok.status_code == 200, ok.text
        # ...and the same code is not accepted twice (replay), nor an older one.
        replay = await _login(c, user, _code(secret, 1))
        assert replay.status_code == 401
        assert (await _login(c, user, _code(secret, 0))).status_code == 401


async def test_recovery_codes_work_once(app: FastAPI, user_factory: UserFactory) -> None:
    user = await user_factory()
    async with client_at(app) as c:
        _, codes = await _enable(c, user)
        first = await _login(c, user, codes[0].upper())  # case and dashes do not matter
        assert first.status_code == 200, first.text
        again = await _login(c, user, codes[0])
        assert again.status_code == 401
        assert (await _login(c, user, codes[1].replace("-", ""))).status_code == 200


async def test_wrong_codes_count_towards_lockout(app: FastAPI, user_factory: UserFactory) -> None:
    user = await user_factory()
    async with client_at(app) as c:
        secret, _ = await _enable(c, user)
    for _ in range(5):
        async with client_at(app) as c:
            assert (
                await _login(c, user, "123456" if _code(secret) != "123456" else "654321")
            ).status_code == 401
    async with client_at(app) as c:
        r = await _login(c, user, _code(secret, 1))
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "INVALID_CREDENTIALS"


async def test_enable_needs_a_valid_code_and_setup(app: FastAPI, user_factory: UserFactory) -> None:
    user = await user_factory()
    async with client_at(app) as c:
        early = await c.post("/api/auth/2fa/enable", headers=user.headers, json={"code": "123456"})
        assert early.status_code == 409
        assert early.json()["error"]["code"] == "TOTP_NOT_SET_UP"
        setup = await c.post("/api/auth/2fa/setup", headers=user.headers)
        secret = setup.json()["secret"]
        bad = await c.post(
            "/api/auth/2fa/enable", headers=user.headers, json={"code": _code(secret, 5)}
        )
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "INVALID_TOTP"
        # Not enabled yet: login needs no code.
        assert (await _login(c, user, None)).status_code == 200
        assert (await c.post("/api/auth/2fa/setup")).status_code == 401


async def test_disable_with_code_or_recovery_code(app: FastAPI, user_factory: UserFactory) -> None:
    user = await user_factory()
    async with client_at(app) as c:
        secret, codes = await _enable(c, user)
        again = await c.post("/api/auth/2fa/setup", headers=user.headers)
        assert again.status_code == 409
        bad = await c.post("/api/auth/2fa/disable", headers=user.headers, json={"code": "999999"})
        assert bad.status_code == 422
        off = await c.post("/api/auth/2fa/disable", headers=user.headers, json={"code": codes[3]})
        assert off.status_code == 200, off.text
        assert (await _login(c, user, None)).status_code == 200
        # Enable again: new recovery codes; the old ones are gone.
        secret, new_codes = await _enable(c, user)
        assert not set(codes) & set(new_codes)
        assert (await _login(c, user, codes[4])).status_code == 401
        off = await c.post(
            "/api/auth/2fa/disable", headers=user.headers, json={"code": _code(secret, 1)}
        )
        assert off.status_code == 200


async def test_regenerate_recovery_codes(app: FastAPI, user_factory: UserFactory) -> None:
    user = await user_factory()
    async with client_at(app) as c:
        _, codes = await _enable(c, user)
        r = await c.post(
            "/api/auth/2fa/recovery-codes", headers=user.headers, json={"code": codes[0]}
        )
        assert r.status_code == 200
        fresh = r.json()["recovery_codes"]
        assert (await _login(c, user, codes[1])).status_code == 401
        assert (await _login(c, user, fresh[0])).status_code == 200


def test_matching_step_window() -> None:
    secret = totp.new_secret()
    now = 1_700_000_000.0
    step = totp.current_step(now)
    code = pyotp.TOTP(secret).at(now)
    assert totp.matching_step(secret, code, now=now) == step
    assert totp.matching_step(secret, code, after_step=step, now=now) is None
    assert totp.matching_step(secret, code, now=now + 30) == step  # one step of drift
    assert totp.matching_step(secret, code, now=now + 90) is None
    assert totp.matching_step(secret, "12345", now=now) is None
    assert totp.matching_step(secret, "abcdef", now=now) is None
    assert totp.normalize_recovery_code("ABCD-EFGH-JKMN-PQRS") == "abcdefghjkmnpqrs"
    assert totp.normalize_recovery_code("0000-0000-0000-0000") is None
