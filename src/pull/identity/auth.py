"""Registration, log-in, token refresh, log-out and re-authentication: the session flows
behind `/api/auth/*`. Failures that must survive the request are marked `persist`."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import repository as repo
from pull.identity.api_keys import revoke_all_api_keys
from pull.identity.errors import (
    AccountDisabled,
    InvalidCredentials,
    InvalidToken,
    InvalidTotp,
    SignedRequestCannotCreateKeys,
    TokenReused,
    TotpRequired,
)
from pull.identity.mailer import Email
from pull.identity.models import User
from pull.identity.schemas import (
    AuthResponse,
    AuthUser,
    RegisterRequest,
    RequestMeta,
    TokenPair,
)
from pull.identity.service import (
    DISABLED_STATUSES,
    SESSION_TOUCH_INTERVAL,
    IdentityEnv,
    create_user,
    issue_tokens,
    normalize_email,
    record_audit,
    require_user,
    send_token_email,
    start_session,
    user_read,
)
from pull.identity.two_factor import check_second_factor
from pull.kit.crypto import sha256_hex
from pull.kit.db import utcnow
from pull.kit.errors import Unprocessable
from pull.kit.tokens import AccessClaims

log = logging.getLogger("pull.identity")

MAX_LOCK = dt.timedelta(hours=24)


async def register(
    *, session: AsyncSession, data: RegisterRequest, env: IdentityEnv, meta: RequestMeta
) -> AuthResponse:
    user = await create_user(
        session=session,
        env=env,
        email=data.email,
        password=data.password,
        display_name=data.display_name,
        referral_code=data.referral_code,
    )
    await send_token_email(session, env=env, user=user, purpose="verify_email")
    pair = await start_session(session, env=env, user=user, meta=meta)
    record_audit(session, action="user.register", meta=meta, actor_id=user.id)
    return AuthResponse(user=user_read(user), **pair.model_dump())


def _lock_duration(env: IdentityEnv, failures: int) -> dt.timedelta | None:
    """Each `threshold` consecutive failures lock the account, twice as long as the last."""
    threshold = env.settings.login_lockout_threshold
    if failures < threshold or failures % threshold:
        return None
    doublings = min(failures // threshold - 1, 16)
    lock: dt.timedelta = dt.timedelta(minutes=env.settings.login_lockout_minutes) * (2**doublings)
    return min(lock, MAX_LOCK)


async def _count_failure(
    session: AsyncSession, *, env: IdentityEnv, user: User, meta: RequestMeta, reason: str
) -> None:
    now = utcnow()
    user.failed_login_count += 1
    record_audit(
        session,
        action="login.failure",
        meta=meta,
        actor_id=user.id,
        details={"reason": reason, "failures": user.failed_login_count},
    )
    lock = _lock_duration(env, user.failed_login_count)
    if lock is not None:
        user.locked_until = now + lock
        record_audit(
            session,
            action="account.locked",
            meta=meta,
            actor_id=user.id,
            details={"minutes": int(lock.total_seconds() // 60)},
        )
        await env.mailer.send(
            session=session,
            email=Email(
                to=user.email,
                subject="Your PULL account is temporarily locked",
                body=(
                    f"After {user.failed_login_count} failed sign-in attempts your account is "
                    f"locked until {user.locked_until:%Y-%m-%d %H:%M} UTC. If this was not you, "
                    "reset your password: it also lifts the lock.\n"
                ),
                kind="account_locked",
            ),
        )
    await session.flush()


async def login(
    *,
    session: AsyncSession,
    env: IdentityEnv,
    email: str,
    password: str,
    totp_code: str | None,
    meta: RequestMeta,
) -> AuthResponse:
    """Check credentials; unknown email, wrong password and a locked account answer alike."""
    normalized = normalize_email(email)
    user = await repo.user_by_email(session, normalized, lock=True)
    ok = await env.passwords.verify(user.password_hash if user else None, password)
    if user is None:
        record_audit(
            session,
            action="login.failure",
            meta=meta,
            details={"reason": "unknown_email", "email": normalized[:320]},
        )
        raise InvalidCredentials()
    now = utcnow()
    if user.locked_until is not None and user.locked_until > now:
        record_audit(
            session,
            action="login.failure",
            meta=meta,
            actor_id=user.id,
            details={"reason": "locked"},
        )
        raise InvalidCredentials()
    if not ok:
        await _count_failure(session, env=env, user=user, meta=meta, reason="password")
        raise InvalidCredentials()
    if user.status in DISABLED_STATUSES:
        record_audit(
            session,
            action="login.failure",
            meta=meta,
            actor_id=user.id,
            details={"reason": user.status},
        )
        raise AccountDisabled()
    if user.totp_enabled_at is not None:
        if not totp_code:
            raise TotpRequired()
        if not await check_second_factor(session, env=env, user=user, code=totp_code):
            await _count_failure(session, env=env, user=user, meta=meta, reason="totp")
            raise InvalidTotp()
    user.failed_login_count = 0
    user.locked_until = None
    if env.passwords.needs_rehash(user.password_hash):
        user.password_hash = await env.passwords.hash(password)
        log.info("password rehashed with current parameters", extra={"user_id": str(user.id)})
    pair = await start_session(session, env=env, user=user, meta=meta)
    record_audit(session, action="login.success", meta=meta, actor_id=user.id)
    return AuthResponse(user=user_read(user), **pair.model_dump())


async def refresh(
    *, session: AsyncSession, env: IdentityEnv, refresh_token: str, meta: RequestMeta
) -> TokenPair:
    """Rotate a refresh token. A used one revokes its whole family (TOKEN_REUSED)."""
    row = await repo.refresh_token_for_update(session, sha256_hex(refresh_token))
    if row is None:
        raise InvalidToken()
    auth_session = await repo.session_by_id(session, row.session_id, lock=True)
    if auth_session is None:
        raise InvalidToken()
    now = utcnow()
    if row.used_at is not None:
        if auth_session.revoked_at is None:
            await repo.revoke_session(session, auth_session.id, now, "refresh_reuse")
        record_audit(
            session,
            action="refresh.reuse",
            meta=meta,
            actor_id=auth_session.user_id,
            resource=f"session:{auth_session.id}",
        )
        raise TokenReused()
    if (
        auth_session.revoked_at is not None
        or auth_session.expires_at <= now
        or row.expires_at <= now
    ):
        raise InvalidToken()
    user = await repo.user_by_id(session, auth_session.user_id)
    if user is None or user.status in DISABLED_STATUSES:
        raise AccountDisabled()
    row.used_at = now
    auth_session.last_used_at = now
    return await issue_tokens(session, env=env, auth_session=auth_session, now=now)


async def logout(
    *, session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID, meta: RequestMeta
) -> None:
    await repo.revoke_session(session, session_id, utcnow(), "logout")
    record_audit(
        session, action="logout", meta=meta, actor_id=user_id, resource=f"session:{session_id}"
    )


async def logout_all(*, session: AsyncSession, user_id: uuid.UUID, meta: RequestMeta) -> None:
    """Log out everywhere: every session, this one included, and every API key end now."""
    now = utcnow()
    revoked = await repo.revoke_user_sessions(session, user_id, now, "logout_all")
    keys = await revoke_all_api_keys(
        session, user_id=user_id, now=now, reason="logout_all", meta=meta
    )
    record_audit(
        session,
        action="logout.all",
        meta=meta,
        actor_id=user_id,
        details={"sessions_revoked": revoked, "api_keys_revoked": keys},
    )


async def reauthenticate(
    *,
    session: AsyncSession,
    env: IdentityEnv,
    caller: AuthUser,
    password: str | None,
    totp_code: str | None,
    meta: RequestMeta,
) -> dt.datetime:
    """Prove the password or a 2FA code again; sensitive actions (creating an API key) need
    one within RECENT_AUTH_WINDOW. A wrong one counts as a failed login (progressive lock)."""
    if caller.session_id is None:
        raise SignedRequestCannotCreateKeys("Reauthentication needs a session, not an API key")
    if not password and not totp_code:
        raise Unprocessable("Give password or totp_code", code="CREDENTIALS_REQUIRED")
    user = await require_user(session, caller.id)
    now = utcnow()
    locked = user.locked_until is not None and user.locked_until > now
    if password:
        ok = await env.passwords.verify(user.password_hash, password) and not locked
        method = "password"
    else:
        assert totp_code is not None
        ok = (
            not locked
            and user.totp_enabled_at is not None
            and await check_second_factor(session, env=env, user=user, code=totp_code)
        )
        method = "totp"
    if not ok:
        if not locked:
            await _count_failure(session, env=env, user=user, meta=meta, reason=f"reauth_{method}")
        record_audit(
            session,
            action="reauth.failure",
            meta=meta,
            actor_id=user.id,
            details={"method": method},
        )
        raise InvalidCredentials("Password or code is incorrect")
    user.failed_login_count = 0
    await repo.mark_session_authenticated(session, caller.session_id, now)
    record_audit(
        session, action="reauth.success", meta=meta, actor_id=user.id, details={"method": method}
    )
    return now


async def check_access(
    *, session: AsyncSession, claims: AccessClaims
) -> tuple[AuthUser, dt.datetime] | None:
    """The user behind a verified access token and the end of its session, if the session is
    live (PostgreSQL decides; `auth_cache` keeps this answer until a change of the user)."""
    try:
        session_id = uuid.UUID(claims.session_id)
        user_id = uuid.UUID(claims.user_id)
    except ValueError:
        return None
    found = await repo.session_auth(session, session_id)
    now = utcnow()
    if (
        found is None
        or found.user_id != user_id
        or found.revoked_at is not None
        or found.expires_at <= now
        or found.status in DISABLED_STATUSES
    ):
        return None
    if found.last_used_at < now - SESSION_TOUCH_INTERVAL:
        await repo.touch_session(session, session_id, now, now - SESSION_TOUCH_INTERVAL)
    user = AuthUser(
        id=user_id,
        email=found.email,
        role=found.role,
        status=found.status,
        session_id=session_id,
        totp_enabled=found.totp_enabled_at is not None,
        authenticated_at=found.authenticated_at,
    )
    return user, found.expires_at


async def authenticate_access(*, session: AsyncSession, claims: AccessClaims) -> AuthUser | None:
    """The user behind a verified access token, if its session is live (PostgreSQL decides)."""
    found = await check_access(session=session, claims=claims)
    return None if found is None else found[0]
