"""API keys and Kalshi-style RSA-PSS signed requests, signed the way Kalshi's clients sign."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from fastapi import FastAPI

from pull.app import create_app
from pull.identity.deps import SignedUser
from tests.conftest import AppRunner, Services, TestUser, UserFactory, make_settings
from tests.identity.conftest import client_at

PATH = "/trade-api/v2/portfolio/balance"


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def kalshi_headers(
    private_key: rsa.RSAPrivateKey,
    key_id: str,
    method: str,
    path: str,
    timestamp_ms: int | None = None,
) -> dict[str, str]:
    """Written as in Kalshi's Python starter code, independent of our own signing module."""
    ts = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    path_without_query = path.split("?")[0]
    message = ts + method + path_without_query
    signature = private_key.sign(
        message.encode("utf-8"),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )
    return {
        "KALSHI-ACCESS-KEY": key_id,
        "KALSHI-ACCESS-SIGNATURE": base64.b64encode(signature).decode("utf-8"),
        "KALSHI-ACCESS-TIMESTAMP": ts,
    }


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def signed_app(services: Services) -> AsyncIterator[FastAPI]:
    """The app plus a route guarded by SignedUser, as the trading API will be."""
    app = create_app(make_settings(services))

    @app.get(PATH)
    async def balance(user: SignedUser) -> dict[str, str | None]:
        return {"user_id": str(user.id), "session_id": str(user.session_id)}

    @app.post("/trade-api/v2/portfolio/orders")
    async def order(user: SignedUser) -> dict[str, str]:
        return {"user_id": str(user.id)}

    async with AppRunner(app):
        yield app


async def _register_key(c: httpx.AsyncClient, user: TestUser, key: rsa.RSAPrivateKey) -> str:
    r = await c.post(
        "/api/v1/api-keys", headers=user.headers, json={"name": "bot", "public_key_pem": _pem(key)}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["key_id"])


async def _user(c: httpx.AsyncClient) -> TestUser:
    email = f"k-{uuid.uuid4().hex[:8]}@example.com"
    r = await c.post(
        "/api/auth/register", json={"email": email, "password": "Correct-Horse-9-Battery"}
    )
    b = r.json()
    return TestUser(
        id=uuid.UUID(b["user"]["id"]),
        email=email,
        password="Correct-Horse-9-Battery",
        access_token=b["access_token"],
        refresh_token=b["refresh_token"],
        headers={"Authorization": f"Bearer {b['access_token']}"},
    )


async def test_create_list_revoke(
    client: httpx.AsyncClient, user_factory: UserFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    user = await user_factory()
    other = await user_factory()
    r = await client.post(
        "/api/v1/api-keys",
        headers=user.headers,
        json={"name": "my bot", "public_key_pem": _pem(rsa_key)},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    key_id = body["key_id"]
    uuid.UUID(key_id)
    assert body["name"] == "my bot"
    assert len(body["fingerprint"]) == 64
    assert "private" not in r.text.lower()

    listed = await client.get("/api/v1/api-keys", headers=user.headers)
    assert [k["key_id"] for k in listed.json()["items"]] == [key_id]
    assert (await client.get("/api/v1/api-keys", headers=other.headers)).json()["items"] == []
    assert (await client.get("/api/v1/api-keys")).status_code == 401

    # Only the owner can revoke.
    assert (
        await client.delete(f"/api/v1/api-keys/{key_id}", headers=other.headers)
    ).status_code == 404
    assert (
        await client.delete(f"/api/v1/api-keys/{key_id}", headers=user.headers)
    ).status_code == 204
    assert (await client.get("/api/v1/api-keys", headers=user.headers)).json()["items"] == []
    assert (
        await client.delete(f"/api/v1/api-keys/{key_id}", headers=user.headers)
    ).status_code == 404


async def test_weak_or_wrong_keys_are_refused(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    ecdsa = ec.generate_private_key(ec.SECP256R1())
    private_pem = small.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    for pem in (_pem(small), _pem(ecdsa), "not a key", private_pem):
        r = await client.post(
            "/api/v1/api-keys", headers=user.headers, json={"name": "x", "public_key_pem": pem}
        )
        assert r.status_code == 422, pem[:30]
        assert r.json()["error"]["code"] == "INVALID_PUBLIC_KEY"


async def test_signed_request_accepted(signed_app: FastAPI, rsa_key: rsa.RSAPrivateKey) -> None:
    async with client_at(signed_app) as c:
        user = await _user(c)
        key_id = await _register_key(c, user, rsa_key)
        r = await c.get(PATH, headers=kalshi_headers(rsa_key, key_id, "GET", PATH))
        assert r.status_code == 200, r.text
        assert r.json() == {"user_id": str(user.id), "session_id": "None"}
        # The query string is not signed.
        q = await c.get(
            PATH + "?limit=5", headers=kalshi_headers(rsa_key, key_id, "GET", PATH + "?limit=5")
        )
        assert q.status_code == 200
        post = await c.post(
            "/trade-api/v2/portfolio/orders",
            headers=kalshi_headers(rsa_key, key_id, "POST", "/trade-api/v2/portfolio/orders"),
        )
        assert post.status_code == 200
        keys = await c.get("/api/v1/api-keys", headers=user.headers)
        assert keys.json()["items"][0]["last_used_at"] is not None


async def test_signed_request_rejections(
    signed_app: FastAPI, rsa_key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    async with client_at(signed_app) as c:
        user = await _user(c)
        key_id = await _register_key(c, user, rsa_key)

        async def status(
            headers: dict[str, str], method: str = "GET", path: str = PATH
        ) -> tuple[int, str]:
            r = await c.request(method, path, headers=headers)
            return r.status_code, r.json().get("error", {}).get("code", "")

        # Signed with a key other than the registered one.
        assert await status(kalshi_headers(other_key, key_id, "GET", PATH)) == (
            401,
            "INVALID_SIGNATURE",
        )
        # Stale and future timestamps (more than 60 s off).
        old = int(time.time() * 1000) - 61_000
        assert await status(kalshi_headers(rsa_key, key_id, "GET", PATH, old)) == (
            401,
            "STALE_TIMESTAMP",
        )
        future = int(time.time() * 1000) + 61_000
        assert await status(kalshi_headers(rsa_key, key_id, "GET", PATH, future)) == (
            401,
            "STALE_TIMESTAMP",
        )
        # Within the window is fine.
        near = int(time.time() * 1000) - 30_000
        assert (await status(kalshi_headers(rsa_key, key_id, "GET", PATH, near)))[0] == 200
        # A signature for another path, or another method, does not carry over.
        other_path = kalshi_headers(rsa_key, key_id, "GET", "/trade-api/v2/portfolio/positions")
        assert await status(other_path) == (401, "INVALID_SIGNATURE")
        get_sig = kalshi_headers(rsa_key, key_id, "GET", "/trade-api/v2/portfolio/orders")
        assert await status(get_sig, "POST", "/trade-api/v2/portfolio/orders") == (
            401,
            "INVALID_SIGNATURE",
        )
        # Unknown key id, garbage signature, missing headers.
        assert await status(kalshi_headers(rsa_key, str(uuid.uuid4()), "GET", PATH)) == (
            401,
            "INVALID_SIGNATURE",
        )
        assert await status(kalshi_headers(rsa_key, "nope", "GET", PATH)) == (
            401,
            "INVALID_SIGNATURE",
        )
        garbage = {**kalshi_headers(rsa_key, key_id, "GET", PATH), "KALSHI-ACCESS-SIGNATURE": "%%%"}
        assert await status(garbage) == (401, "INVALID_SIGNATURE")
        assert await status({}) == (401, "UNAUTHORIZED")
        # A bearer token is not a signature.
        assert await status(user.headers) == (401, "UNAUTHORIZED")

        # Revoked keys stop working at once.
        assert (
            await c.delete(f"/api/v1/api-keys/{key_id}", headers=user.headers)
        ).status_code == 204
        assert await status(kalshi_headers(rsa_key, key_id, "GET", PATH)) == (
            401,
            "INVALID_SIGNATURE",
        )


async def test_large_key_accepted(client: httpx.AsyncClient, user_factory: UserFactory) -> None:
    user = await user_factory()
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    r = await client.post(
        "/api/v1/api-keys", headers=user.headers, json={"name": "big", "public_key_pem": _pem(key)}
    )
    assert r.status_code == 201
