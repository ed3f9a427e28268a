"""Access-token encoding and strict decoding (algorithm pinned, typed claims).

Session revocation is checked by the identity module; this module only proves a token's
signature, audience, issuer, type and expiry.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request

from pull.config import Settings

ISSUER = "pull-api"
AUDIENCE = "pull-app"
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "typ", "jti", "iat", "exp"]


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    jti: str
    issued_at: int
    expires_at: int


class InvalidToken(Exception):
    pass


def encode_access_token(
    settings: Settings, *, user_id: str, session_id: str, now: int | None = None
) -> tuple[str, int]:
    issued = int(time.time()) if now is None else now
    ttl = settings.jwt_access_ttl_seconds
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user_id,
        "sid": session_id,
        "typ": "access",
        "jti": secrets.token_hex(16),
        "iat": issued,
        "exp": issued + ttl,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM), ttl


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("unexpected algorithm")
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": REQUIRED_CLAIMS},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if claims.get("typ") != "access":
        raise InvalidToken("not an access token")
    return AccessClaims(
        user_id=str(claims["sub"]),
        session_id=str(claims["sid"]),
        jti=str(claims["jti"]),
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
    )


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def peek_user_id(request: Request, settings: Settings) -> str | None:
    """User id of a validly signed access token, without the session check (rate-limit keys)."""
    token = bearer_token(request)
    if token is None:
        return None
    try:
        return decode_access_token(settings, token).user_id
    except InvalidToken:
        return None
