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


LEEWAY = 5  # seconds of clock skew accepted on exp and iat
# Verified tokens, for their remaining lifetime: every signed-in request presents the same
# token again, and verifying it (base64, JSON, HMAC, claims) was ~9-15% of a cached read's
# CPU. Keyed by (secret, token), so only a token this process verified with this secret is
# ever found; an entry answers only until the token's own expiry (+ LEEWAY), as PyJWT would.
# It proves the signature and expiry only, never the session: revocation is checked after
# this on every request (identity.deps.current_user), so logout still takes effect at once.
VERIFIED_MAX = 4096
_verified: dict[tuple[str, str], AccessClaims] = {}


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    key = (settings.jwt_secret, token)
    cached = _verified.get(key)
    if cached is not None:
        if cached.expires_at > time.time() - LEEWAY:
            return cached
        del _verified[key]
    claims = _verify(settings, token)
    if len(_verified) >= VERIFIED_MAX:
        del _verified[next(iter(_verified))]  # the oldest entry
    _verified[key] = claims
    return claims


def _verify(settings: Settings, token: str) -> AccessClaims:
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
            leeway=LEEWAY,
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
