"""Authentication dependencies: the contract other modules' routers use.

CurrentUser  a valid access token of a live session (PostgreSQL decides; its answer is cached
             in Redis until the user changes, see auth_cache: no database read per request,
             and in the process's memory while the invalidation channel is up, see local_auth:
             no Redis round trip per request)
ActiveUser   CurrentUser whose account is not restricted (money movement, trading)
AdminUser    CurrentUser with role admin (403 FORBIDDEN) and 2FA on (403 ADMIN_2FA_REQUIRED)
SignedUser   a Kalshi-style RSA-PSS signed request made with a registered API key
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from pull.identity import api_keys, auth, auth_cache, service, signing
from pull.identity.errors import AccountRestricted, AdminTotpRequired
from pull.identity.local_auth import LocalAuthCache
from pull.identity.schemas import AuthUser, RequestMeta
from pull.kit.db import session_scope
from pull.kit.errors import Forbidden, Unauthorized
from pull.kit.ratelimit import client_ip
from pull.kit.tokens import InvalidToken, bearer_token, decode_access_token

__all__ = [
    "ActiveUser",
    "AdminUser",
    "AuthUser",
    "CurrentUser",
    "SignedUser",
    "current_user",
    "identity_env",
    "request_meta",
    "require_active",
    "require_admin",
    "signed_request_user",
]

_BEARER = {"WWW-Authenticate": "Bearer"}
_FAR = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)  # API keys do not expire


def identity_env(request: Request) -> service.IdentityEnv:
    """One per app (hasher, mailer, cipher), built on first use from the app's settings."""
    env: service.IdentityEnv | None = getattr(request.app.state, "identity_env", None)
    if env is None:
        env = service.IdentityEnv.from_settings(request.app.state.settings)
        request.app.state.identity_env = env
    return env


def request_meta(request: Request) -> RequestMeta:
    rid = request.scope.get("state", {}).get("request_id")
    return RequestMeta(
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        request_id=rid if isinstance(rid, str) else None,
    )


async def current_user(request: Request) -> AuthUser:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized(headers=_BEARER)
    try:
        claims = decode_access_token(request.app.state.settings, token)
        session_id, user_id = uuid.UUID(claims.session_id), uuid.UUID(claims.user_id)
    except (InvalidToken, ValueError):
        raise Unauthorized(
            "Invalid or expired access token", code="INVALID_TOKEN", headers=_BEARER
        ) from None
    key = auth_cache.session_key(user_id, session_id)
    local: LocalAuthCache | None = getattr(request.app.state, "auth_local", None)
    if local is not None:
        value = local.get(key)
        user = auth_cache.user_from(value, session_id) if value is not None else None
        if user is not None:
            request.scope.setdefault("state", {})["user_id"] = str(user.id)
            return user
    stamp = local.token(user_id) if local is not None else None
    redis: Redis | None = getattr(request.app.state, "redis", None)
    found = await auth_cache.lookup(redis, key, user_id) if redis is not None else None
    user = None
    if found is not None and found.value is not None:
        user = auth_cache.user_from(found.value, session_id)
        if user is not None and local is not None:
            local.put(key, user_id, found.value, stamp)
    if user is None:
        async with session_scope(request.app.state.sessionmaker) as session:
            checked = await auth.check_access(session=session, claims=claims)
        if checked is None:
            raise Unauthorized("Session has ended", code="INVALID_TOKEN", headers=_BEARER)
        user, until = checked
        if redis is not None and found is not None and found.gen is not None:
            ttl = until.timestamp() - time.time()
            value = auth_cache.user_value(user, until)
            await auth_cache.store(redis, key, value, found.gen, ttl)
            if local is not None:
                local.put(key, user_id, value, stamp)
    request.scope.setdefault("state", {})["user_id"] = str(user.id)
    return user


CurrentUser = Annotated[AuthUser, Depends(current_user)]


async def require_admin(user: CurrentUser) -> AuthUser:
    """An admin with two-factor authentication on, signed in with a session (never a key)."""
    if user.role != "admin" or user.session_id is None:
        raise Forbidden("Administrators only")
    if not user.totp_enabled:
        raise AdminTotpRequired()
    return user


async def require_active(user: CurrentUser) -> AuthUser:
    if user.status != "active":
        raise AccountRestricted()
    return user


AdminUser = Annotated[AuthUser, Depends(require_admin)]
ActiveUser = Annotated[AuthUser, Depends(require_active)]


async def signed_request_user(request: Request) -> AuthUser:
    """Authenticate a request signed with a registered API key (Kalshi's scheme, see signing).
    The key and its owner are cached like sessions (auth_cache); the signature and timestamp
    are checked on every request."""
    key_id = request.headers.get(signing.HEADER_KEY)
    timestamp = request.headers.get(signing.HEADER_TIMESTAMP)
    signature = request.headers.get(signing.HEADER_SIGNATURE)
    if not key_id or not timestamp or not signature:
        raise Unauthorized(
            f"Signed request required: {signing.HEADER_KEY}, {signing.HEADER_TIMESTAMP} "
            f"and {signing.HEADER_SIGNATURE} headers"
        )
    signing.check_timestamp(timestamp)
    kid = api_keys.parse_key_id(key_id)
    redis: Redis | None = getattr(request.app.state, "redis", None)
    local: LocalAuthCache | None = getattr(request.app.state, "auth_local", None)
    owner = auth_cache.key_owner(kid)
    found = None
    key: api_keys.KeyAuth | None = None
    token = None
    if owner is not None and local is not None:
        value = local.get(auth_cache.api_key_key(owner, kid))
        cached = auth_cache.user_from(value, None) if value is not None else None
        if value is not None and cached is not None:
            key = api_keys.KeyAuth(kid, cached, value["pem"])
        else:
            token = local.token(owner)
    if key is None and redis is not None and owner is not None:
        found = await auth_cache.lookup(redis, auth_cache.api_key_key(owner, kid), owner)
        if found.value is not None:
            cached = auth_cache.user_from(found.value, None)
            if cached is not None:
                key = api_keys.KeyAuth(kid, cached, found.value["pem"])
                if local is not None:
                    local.put(auth_cache.api_key_key(owner, kid), owner, found.value, token)
    check = {"timestamp": timestamp, "signature": signature}
    where = {"method": request.method, "path": request.url.path}
    if key is not None:
        user = api_keys.check_signed(key, **check, **where)
    else:
        async with session_scope(request.app.state.sessionmaker) as session:
            key = await api_keys.api_key_auth(session=session, key_id=kid)
            user = api_keys.check_signed(key, **check, **where)
            assert key is not None
            await api_keys.touch_api_key(session=session, key=key)
        auth_cache.remember_owner(kid, user.id)
        if redis is not None and found is not None and found.gen is not None:
            value = {**auth_cache.user_value(user, _FAR), "pem": key.public_key_pem}
            await auth_cache.store(
                redis, auth_cache.api_key_key(user.id, kid), value, found.gen, auth_cache.ENTRY_TTL
            )
            if local is not None and owner == user.id:
                local.put(auth_cache.api_key_key(user.id, kid), user.id, value, token)
    request.scope.setdefault("state", {})["user_id"] = str(user.id)
    return user


SignedUser = Annotated[AuthUser, Depends(signed_request_user)]
