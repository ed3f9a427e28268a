"""Plaid webhook verification (`Plaid-Verification`), and signing for the sandbox.

Plaid signs each webhook with an ES256 JWT in the `Plaid-Verification` header: its header
names the key (`kid`), its claims carry `iat` and `request_body_sha256` (hex SHA-256 of the
raw body). The receiver fetches the public JWK by kid (/webhook_verification_key/get), checks
the signature, that `iat` is at most 5 minutes old, and that the body hash matches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.utils import base64url_encode

from pull.kit.errors import Unauthorized

HEADER = "Plaid-Verification"
MAX_KID_LENGTH = 128  # Plaid's are 36; anything longer is not worth a lookup


class InvalidWebhook(Unauthorized):
    code = "INVALID_WEBHOOK_SIGNATURE"
    message = "Webhook signature verification failed"


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def verify(
    token: str | None,
    body: bytes,
    fetch_key: Callable[[str], Awaitable[dict[str, Any]]],
    *,
    max_age_seconds: int = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """The JWT's claims if it proves Plaid sent exactly `body` recently; else InvalidWebhook."""
    if not token:
        raise InvalidWebhook("Missing Plaid-Verification header")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidWebhook() from exc
    if header.get("alg") != "ES256" or not isinstance(header.get("kid"), str):
        raise InvalidWebhook("Plaid-Verification must be an ES256 JWT with a kid")
    if not 0 < len(header["kid"]) <= MAX_KID_LENGTH:
        raise InvalidWebhook("Plaid-Verification kid has an implausible length")
    try:
        jwk = await fetch_key(header["kid"])
    except Exception as exc:
        raise InvalidWebhook("Unknown verification key") from exc
    if jwk.get("expired_at"):
        raise InvalidWebhook("Verification key expired")
    try:
        key = jwt.PyJWK(jwk, algorithm="ES256")
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key.key,
            algorithms=["ES256"],
            options={"verify_exp": False, "verify_iat": False, "require": ["iat"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidWebhook() from exc
    iat = claims.get("iat")
    current = time.time() if now is None else now
    if not isinstance(iat, int | float) or current - iat > max_age_seconds or iat - current > 60:
        raise InvalidWebhook("Webhook is too old")
    expected = claims.get("request_body_sha256")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, body_sha256(body)):
        raise InvalidWebhook("Body does not match the signature")
    return claims


# --- the sandbox's key -------------------------------------------------------------------------


def sandbox_private_key(seed: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key derived from PLAID_SANDBOX_KEY_SEED, the same in every process."""
    order = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
    scalar = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def public_jwk(key: ec.EllipticCurvePrivateKey, *, created_at: int = 0) -> dict[str, Any]:
    """The key as Plaid's /webhook_verification_key/get returns it."""
    numbers = key.public_key().public_numbers()
    x = base64url_encode(numbers.x.to_bytes(32, "big")).decode()
    y = base64url_encode(numbers.y.to_bytes(32, "big")).decode()
    kid = hashlib.sha256(f"{x}.{y}".encode()).hexdigest()[:32]
    return {
        "alg": "ES256",
        "created_at": created_at,
        "crv": "P-256",
        "expired_at": None,
        "kid": kid,
        "kty": "EC",
        "use": "sig",
        "x": x,
        "y": y,
    }


def sign(key: ec.EllipticCurvePrivateKey, body: bytes, *, iat: int | None = None) -> str:
    """A Plaid-Verification header value for `body`."""
    kid = public_jwk(key)["kid"]
    claims = {
        "iat": int(time.time()) if iat is None else iat,
        "request_body_sha256": body_sha256(body),
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


def webhook_body(environment: str = "sandbox") -> bytes:
    return json.dumps(
        {
            "webhook_type": "TRANSFER",
            "webhook_code": "TRANSFER_EVENTS_UPDATE",
            "environment": environment,
        }
    ).encode()
