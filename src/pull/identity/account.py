"""The signed-in user's own account: profile, password, sessions, e-mail verification and
password reset."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import repository as repo
from pull.identity.api_keys import revoke_all_api_keys
from pull.identity.errors import (
    InvalidCredentials,
    InvalidToken,
)
from pull.identity.models import OneTimeToken
from pull.identity.passwords import check_password_policy
from pull.identity.schemas import (
    RequestMeta,
    SessionRead,
    UserRead,
    UserUpdate,
)
from pull.identity.service import (
    DISABLED_STATUSES,
    IdentityEnv,
    emit_user_event,
    normalize_email,
    record_audit,
    require_user,
    send_token_email,
    user_read,
)
from pull.kit.crypto import sha256_hex
from pull.kit.db import utcnow
from pull.kit.errors import NotFound

RESEND_COOLDOWN = dt.timedelta(seconds=60)


async def update_me(*, session: AsyncSession, user_id: uuid.UUID, data: UserUpdate) -> UserRead:
    user = await require_user(session, user_id)
    fields = data.model_fields_set
    if "display_name" in fields:
        user.display_name = data.display_name.strip() if data.display_name else None
    if "phone" in fields and data.phone != user.phone:
        user.phone = data.phone
        user.phone_verified_at = None
    await session.flush()
    return user_read(user)


async def change_password(
    *,
    session: AsyncSession,
    env: IdentityEnv,
    user_id: uuid.UUID,
    session_id: uuid.UUID | None,
    current_password: str,
    new_password: str,
    meta: RequestMeta,
) -> None:
    """Change a known password; every other session of the user is revoked."""
    user = await require_user(session, user_id)
    if not await env.passwords.verify(user.password_hash, current_password):
        record_audit(session, action="password.change_failed", meta=meta, actor_id=user.id)
        raise InvalidCredentials("Current password is incorrect")
    check_password_policy(new_password, email=user.email)
    now = utcnow()
    user.password_hash = await env.passwords.hash(new_password)
    user.password_changed_at = now
    revoked = await repo.revoke_user_sessions(
        session, user.id, now, "password_change", except_session=session_id
    )
    keys = await revoke_all_api_keys(
        session, user_id=user.id, now=now, reason="password_change", meta=meta
    )
    record_audit(
        session,
        action="password.change",
        meta=meta,
        actor_id=user.id,
        details={"sessions_revoked": revoked, "api_keys_revoked": keys},
    )


async def list_sessions(
    *, session: AsyncSession, user_id: uuid.UUID, current_session_id: uuid.UUID | None
) -> list[SessionRead]:
    rows = await repo.active_sessions(session, user_id, utcnow())
    return [
        SessionRead.model_validate(row).model_copy(update={"current": row.id == current_session_id})
        for row in rows
    ]


async def revoke_own_session(
    *, session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID, meta: RequestMeta
) -> None:
    target = await repo.session_by_id(session, session_id)
    if target is None or target.user_id != user_id or target.revoked_at is not None:
        raise NotFound("Session not found", code="SESSION_NOT_FOUND")
    await repo.revoke_session(session, session_id, utcnow(), "user_revoked")
    record_audit(
        session,
        action="session.revoke",
        meta=meta,
        actor_id=user_id,
        resource=f"session:{session_id}",
    )


# --- email verification and password reset -------------------------------------------------


async def _consume_token(session: AsyncSession, token: str, purpose: str) -> OneTimeToken:
    row = await repo.one_time_token_for_update(session, sha256_hex(token), purpose)
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise InvalidToken("Invalid or expired token")
    row.used_at = utcnow()
    return row


async def verify_email(*, session: AsyncSession, token: str, meta: RequestMeta) -> UserRead:
    row = await _consume_token(session, token, "verify_email")
    user = await require_user(session, row.user_id)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
        emit_user_event(session, "identity.email_verified", user.id)
    record_audit(session, action="email.verify", meta=meta, actor_id=user.id)
    await session.flush()
    return user_read(user)


async def resend_verification(
    *, session: AsyncSession, env: IdentityEnv, email: str, meta: RequestMeta
) -> None:
    """Always succeeds from the caller's view (no enumeration); mails at most once a minute."""
    user = await repo.user_by_email(session, normalize_email(email), lock=True)
    if user is None or user.email_verified_at is not None or user.status in DISABLED_STATUSES:
        return
    last = await repo.latest_one_time_token_at(session, user.id, "verify_email")
    if last is not None and last > utcnow() - RESEND_COOLDOWN:
        return
    await send_token_email(session, env=env, user=user, purpose="verify_email")


async def forgot_password(
    *, session: AsyncSession, env: IdentityEnv, email: str, meta: RequestMeta
) -> None:
    """Always succeeds from the caller's view (no enumeration)."""
    user = await repo.user_by_email(session, normalize_email(email), lock=True)
    if user is None or user.status in DISABLED_STATUSES:
        return
    last = await repo.latest_one_time_token_at(session, user.id, "reset_password")
    if last is not None and last > utcnow() - RESEND_COOLDOWN:
        return
    await send_token_email(session, env=env, user=user, purpose="reset_password")
    record_audit(session, action="password.reset_requested", meta=meta, actor_id=user.id)


async def reset_password(
    *, session: AsyncSession, env: IdentityEnv, token: str, password: str, meta: RequestMeta
) -> None:
    """Set a new password from an emailed token; every session is revoked, the lock lifted."""
    row = await repo.one_time_token_for_update(session, sha256_hex(token), "reset_password")
    now = utcnow()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise InvalidToken("Invalid or expired token")
    user = await require_user(session, row.user_id)
    check_password_policy(password, email=user.email)
    row.used_at = now
    await repo.expire_one_time_tokens(session, user.id, "reset_password", now)
    user.password_hash = await env.passwords.hash(password)
    user.password_changed_at = now
    user.failed_login_count = 0
    user.locked_until = None
    # Opening the emailed link proves the address.
    if user.email_verified_at is None:
        user.email_verified_at = now
    revoked = await repo.revoke_user_sessions(session, user.id, now, "password_reset")
    keys = await revoke_all_api_keys(
        session, user_id=user.id, now=now, reason="password_reset", meta=meta
    )
    record_audit(
        session,
        action="password.reset",
        meta=meta,
        actor_id=user.id,
        details={"sessions_revoked": revoked, "api_keys_revoked": keys},
    )
