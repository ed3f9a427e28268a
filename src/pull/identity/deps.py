"""Authentication dependencies: the contract other modules' routers use.

CurrentUser  a valid access token of a live session (PostgreSQL decides, not Redis)
ActiveUser   CurrentUser whose account is not restricted (money movement, trading)
AdminUser    CurrentUser with role admin (403 FORBIDDEN) and 2FA on (403 ADMIN_2FA_REQUIRED)
SignedUser   a Kalshi-style RSA-PSS signed request made with a registered API key
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pull.identity import service, signing
from pull.identity.errors import AccountRestricted, AdminTotpRequired
from pull.identity.schemas import AuthUser, RequestMeta
from pull.kit.db import SessionDep
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


async def current_user(request: Request, session: SessionDep) -> AuthUser:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized(headers=_BEARER)
    try:
        claims = decode_access_token(request.app.state.settings, token)
    except InvalidToken:
        raise Unauthorized(
            "Invalid or expired access token", code="INVALID_TOKEN", headers=_BEARER
        ) from None
    user = await service.authenticate_access(session=session, claims=claims)
    if user is None:
        raise Unauthorized("Session has ended", code="INVALID_TOKEN", headers=_BEARER)
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


async def signed_request_user(request: Request, session: SessionDep) -> AuthUser:
    """Authenticate a request signed with a registered API key (Kalshi's scheme, see signing)."""
    key_id = request.headers.get(signing.HEADER_KEY)
    timestamp = request.headers.get(signing.HEADER_TIMESTAMP)
    signature = request.headers.get(signing.HEADER_SIGNATURE)
    if not key_id or not timestamp or not signature:
        raise Unauthorized(
            f"Signed request required: {signing.HEADER_KEY}, {signing.HEADER_TIMESTAMP} "
            f"and {signing.HEADER_SIGNATURE} headers"
        )
    user = await service.authenticate_signed(
        session=session,
        key_id=key_id,
        timestamp=timestamp,
        signature=signature,
        method=request.method,
        path=request.url.path,
    )
    request.scope.setdefault("state", {})["user_id"] = str(user.id)
    return user


SignedUser = Annotated[AuthUser, Depends(signed_request_user)]
