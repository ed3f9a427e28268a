"""Access-token attacks: every forged, stale or misused token is a 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pull.config import Settings
from pull.kit.tokens import decode_access_token
from tests.conftest import TestUser, UserFactory
from tests.identity.conftest import mint


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims_of(user: TestUser, settings: Settings) -> dict[str, str]:
    c = decode_access_token(settings, user.access_token)
    return {"sub": c.user_id, "sid": c.session_id}


async def _status(client: httpx.AsyncClient, token: str) -> tuple[int, str]:
    r = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    return r.status_code, r.json().get("error", {}).get("code", "")


async def test_genuine_token_works(
    client: httpx.AsyncClient, user_factory: UserFactory, settings: Settings
) -> None:
    """The control for the attacks below: the same claims, properly signed, are accepted."""
    user = await user_factory()
    token = mint(settings, **_claims_of(user, settings))
    assert await _status(client, token) == (200, "")


async def test_alg_none_is_rejected(
    client: httpx.AsyncClient, user_factory: UserFactory, settings: Settings
) -> None:
    user = await user_factory()
    claims = {
        "iss": "pull-api",
        "aud": "pull-app",
        "typ": "access",
        "jti": "x",
        "iat": int(time.time()),
        "exp": int(time.time()) + 900,
        **_claims_of(user, settings),
    }
    for alg in ("none", "None", "NONE"):
        header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims).encode())
        for token in (f"{header}.{body}.", f"{header}.{body}"):
            assert await _status(client, token) == (401, "INVALID_TOKEN")


async def test_rs256_and_hs_rs_confusion_are_rejected(
    client: httpx.AsyncClient, user_factory: UserFactory, settings: Settings
) -> None:
    user = await user_factory()
    claims = _claims_of(user, settings)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # A token signed with an attacker's RSA key, declared RS256.
    assert await _status(client, mint(settings, secret=private, alg="RS256", **claims)) == (  # type: ignore[arg-type]
        401,
        "INVALID_TOKEN",
    )
    # The classic confusion: HS256 keyed with a public key the attacker knows.
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    now = int(time.time())
    payload = _b64(
        json.dumps(
            {
                "iss": "pull-api",
                "aud": "pull-app",
                "typ": "access",
                "jti": "x",
                "iat": now,
                "exp": now + 900,
                **claims,
            }
        ).encode()
    )
    sig = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert await _status(client, f"{header}.{payload}.{_b64(sig)}") == (401, "INVALID_TOKEN")
    # Another HMAC algorithm with the right secret is still a switch of algorithm.
    assert await _status(client, mint(settings, alg="HS512", **claims)) == (401, "INVALID_TOKEN")


async def test_wrong_secret_expired_and_tampered(
    client: httpx.AsyncClient, user_factory: UserFactory, settings: Settings
) -> None:
    user = await user_factory()
    claims = _claims_of(user, settings)
    assert await _status(client, mint(settings, secret="x" * 40, **claims)) == (
        401,
        "INVALID_TOKEN",
    )
    past = int(time.time()) - 3600
    expired = mint(settings, iat=past, exp=past + 900, **claims)
    assert await _status(client, expired) == (401, "INVALID_TOKEN")

    other = await user_factory()
    header, payload, sig = user.access_token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["sub"] = str(other.id)
    tampered = f"{header}.{_b64(json.dumps(data).encode())}.{sig}"
    assert await _status(client, tampered) == (401, "INVALID_TOKEN")


@pytest.mark.parametrize(
    "override",
    [
        {"aud": "someone-else"},
        {"iss": "evil"},
        {"typ": "refresh"},
    ],
)
async def test_wrong_audience_issuer_or_type(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    settings: Settings,
    override: dict[str, str],
) -> None:
    user = await user_factory()
    token = mint(settings, **{**_claims_of(user, settings), **override})
    assert await _status(client, token) == (401, "INVALID_TOKEN")


async def test_refresh_token_is_not_an_access_token(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    assert await _status(client, user.refresh_token) == (401, "INVALID_TOKEN")
    r = await client.post(
        "/api/auth/check", headers={"Authorization": f"Bearer {user.refresh_token}"}
    )
    assert r.status_code == 401


async def test_valid_signature_but_unknown_or_foreign_session(
    client: httpx.AsyncClient, user_factory: UserFactory, settings: Settings
) -> None:
    """A signed token is not enough: its session must exist and belong to its subject."""
    a = await user_factory()
    b = await user_factory()
    ca, cb = _claims_of(a, settings), _claims_of(b, settings)
    assert await _status(client, mint(settings, sub=ca["sub"], sid=str(uuid.uuid4()))) == (
        401,
        "INVALID_TOKEN",
    )
    assert await _status(client, mint(settings, sub=ca["sub"], sid=cb["sid"])) == (
        401,
        "INVALID_TOKEN",
    )
    assert await _status(client, mint(settings, sub="not-a-uuid", sid=ca["sid"])) == (
        401,
        "INVALID_TOKEN",
    )


async def test_malformed_authorization_headers(client: httpx.AsyncClient) -> None:
    for value in ("", "Bearer", "Bearer ", "Basic abc", "Bearer a.b.c", "Bearer ....."):
        r = await client.get("/api/auth/me", headers={"Authorization": value})
        assert r.status_code == 401, value
        assert r.json()["error"]["code"] in ("UNAUTHORIZED", "INVALID_TOKEN")


def test_jwt_secret_must_be_32_bytes() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(JWT_SECRET="s" * 31)
    assert Settings(JWT_SECRET="s" * 32).jwt_secret == "s" * 32
