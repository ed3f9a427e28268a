"""Identity business rules: the module's public API for the routers and for other modules.

Functions take the caller's session and never commit (the request boundary does). Errors whose
side effects must survive (a counted login failure, a revoked token family) are marked
`persist` (see `pull.identity.errors`).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.identity import repository as repo
from pull.identity import signing, totp
from pull.identity.errors import (
    AccountDisabled,
    InvalidCredentials,
    InvalidToken,
    InvalidTotp,
    RecentAuthRequired,
    SignedRequestCannotCreateKeys,
    TokenReused,
    TotpRequired,
)
from pull.identity.mailer import Email, EmailSender, sender_for
from pull.identity.models import ApiKey, AuditLog, AuthSession, OneTimeToken, RefreshToken, User
from pull.identity.passwords import Passwords, check_password_policy
from pull.identity.providers import PhoneVerifier, verifier_for
from pull.identity.schemas import (
    ApiKeyCreate,
    ApiKeyRead,
    AuthResponse,
    AuthUser,
    RecoveryCodesResponse,
    RegisterRequest,
    RequestMeta,
    SessionRead,
    TokenPair,
    TotpSetupResponse,
    UserRead,
    UserUpdate,
)
from pull.kit.crypto import FieldCipher, random_token, sha256_hex
from pull.kit.db import utcnow
from pull.kit.errors import Conflict, NotFound, Unprocessable
from pull.kit.outbox import emit
from pull.kit.tokens import AccessClaims, encode_access_token

log = logging.getLogger("pull.identity")

REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
REFERRAL_LENGTH = 8
VERIFY_EMAIL_TTL = dt.timedelta(hours=24)
RESET_PASSWORD_TTL = dt.timedelta(hours=1)
RESEND_COOLDOWN = dt.timedelta(seconds=60)
SESSION_TOUCH_INTERVAL = dt.timedelta(minutes=1)
MAX_LOCK = dt.timedelta(hours=24)
DISABLED_STATUSES = ("suspended", "closed")
MAX_API_KEYS = 10
# Creating an API key needs the password or a 2FA code proven this recently in the session.
RECENT_AUTH_WINDOW = dt.timedelta(minutes=5)


@dataclass
class IdentityEnv:
    """What the identity rules need besides a session: settings, hashing, mail, encryption."""

    settings: Settings
    passwords: Passwords
    mailer: EmailSender
    cipher: FieldCipher
    phone_verifier: PhoneVerifier

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        mailer: EmailSender | None = None,
        phone_verifier: PhoneVerifier | None = None,
    ) -> IdentityEnv:
        return cls(
            settings=settings,
            passwords=Passwords.from_settings(settings),
            mailer=mailer or sender_for(settings),
            cipher=FieldCipher(settings.field_encryption_keys),
            phone_verifier=phone_verifier or verifier_for(settings),
        )


# --- helpers -------------------------------------------------------------------------------


def normalize_email(raw: str) -> str:
    """Trimmed, NFKC-normalized, lowercased: the one spelling we store and look up."""
    return unicodedata.normalize("NFKC", raw.strip()).lower()


def _valid_email(email: str) -> bool:
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def user_read(user: User) -> UserRead:
    return UserRead(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        status=user.status,
        referral_code=user.referral_code,
        referred_by_id=user.referred_by_id,
        email_verified=user.email_verified_at is not None,
        phone=user.phone,
        phone_verified=user.phone_verified_at is not None,
        totp_enabled=user.totp_enabled_at is not None,
        created_at=user.created_at,
    )


def _new_referral_code() -> str:
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(REFERRAL_LENGTH))


async def _unique_referral_code(session: AsyncSession) -> str:
    while True:
        code = _new_referral_code()
        if not await repo.referral_code_taken(session, code):
            return code


def record_audit(
    session: AsyncSession,
    *,
    action: str,
    meta: RequestMeta | None = None,
    actor_id: uuid.UUID | None = None,
    resource: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append to the audit log. Callers pass no password, token or code, ever."""
    meta = meta or RequestMeta()
    repo.add_audit(
        session,
        AuditLog(
            actor_id=actor_id,
            action=action,
            resource=resource,
            ip=meta.ip,
            user_agent=(meta.user_agent or None) and meta.user_agent[:512],
            request_id=meta.request_id,
            details=details,
        ),
    )


async def _issue_tokens(
    session: AsyncSession, *, env: IdentityEnv, auth_session: AuthSession, now: dt.datetime
) -> TokenPair:
    refresh = random_token(32)
    expires = now + dt.timedelta(days=env.settings.refresh_ttl_days)
    auth_session.expires_at = expires
    await repo.add_refresh_token(
        session,
        RefreshToken(
            token_hash=sha256_hex(refresh),
            session_id=auth_session.id,
            created_at=now,
            expires_at=expires,
        ),
    )
    access, ttl = encode_access_token(
        env.settings, user_id=str(auth_session.user_id), session_id=str(auth_session.id)
    )
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=ttl)


async def _start_session(
    session: AsyncSession, *, env: IdentityEnv, user: User, meta: RequestMeta
) -> TokenPair:
    now = utcnow()
    auth_session = await repo.add_session(
        session,
        AuthSession(
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            expires_at=now + dt.timedelta(days=env.settings.refresh_ttl_days),
            authenticated_at=now,  # a session starts with the password just proven
            user_agent=(meta.user_agent or None) and meta.user_agent[:512],
            ip=meta.ip,
        ),
    )
    return await _issue_tokens(session, env=env, auth_session=auth_session, now=now)


async def _send_token_email(
    session: AsyncSession, *, env: IdentityEnv, user: User, purpose: str
) -> None:
    now = utcnow()
    ttl = VERIFY_EMAIL_TTL if purpose == "verify_email" else RESET_PASSWORD_TTL
    await repo.expire_one_time_tokens(session, user.id, purpose, now)
    token = random_token(32)
    await repo.add_one_time_token(
        session,
        OneTimeToken(
            token_hash=sha256_hex(token),
            user_id=user.id,
            purpose=purpose,
            created_at=now,
            expires_at=now + ttl,
        ),
    )
    base = env.settings.app_url.rstrip("/")
    if purpose == "verify_email":
        subject = "Confirm your email address"
        body = (
            "Welcome to PULL. Confirm your email address by opening this link within 24 hours:\n"
            f"{base}/verify-email?token={token}\n\n"
            f"Or paste this code into the app: {token}\n"
        )
    else:
        subject = "Reset your PULL password"
        body = (
            "Someone asked to reset the password of your PULL account. If it was you, open this "
            f"link within 1 hour:\n{base}/reset-password?token={token}\n\n"
            f"Or paste this code into the app: {token}\n\n"
            "If it was not you, ignore this message: your password stays as it is.\n"
        )
    await env.mailer.send(
        session=session, email=Email(to=user.email, subject=subject, body=body, kind=purpose)
    )


# --- registration and login ----------------------------------------------------------------


async def create_user(
    *,
    session: AsyncSession,
    env: IdentityEnv,
    email: str,
    password: str,
    display_name: str | None = None,
    referral_code: str | None = None,
    role: str = "user",
) -> User:
    """Validate and insert a user (no session, no mail): registration, the CLI and seeders."""
    normalized = normalize_email(email)
    if not _valid_email(normalized):
        raise Unprocessable("Invalid email address", code="INVALID_EMAIL")
    check_password_policy(password, email=normalized)
    referred_by: uuid.UUID | None = None
    if referral_code:
        referred_by = await repo.user_id_by_referral_code(session, referral_code.strip().upper())
        if referred_by is None:
            raise Unprocessable("Unknown referral code", code="INVALID_REFERRAL_CODE")
    if await repo.email_taken(session, normalized):
        raise Conflict("An account with this email already exists", code="EMAIL_TAKEN")
    user = User(
        id=uuid.uuid4(),
        email=normalized,
        password_hash=await env.passwords.hash(password),
        display_name=display_name.strip() if display_name else None,
        role=role,
        status="active",
        referral_code=await _unique_referral_code(session),
        referred_by_id=referred_by,
        failed_login_count=0,
        password_changed_at=utcnow(),
    )
    try:
        async with session.begin_nested():
            await repo.add_user(session, user)
    except IntegrityError as exc:  # a concurrent registration of the same email won
        raise Conflict("An account with this email already exists", code="EMAIL_TAKEN") from exc
    emit_user_event(session, "identity.user_registered", user.id)
    return user


def emit_user_event(session: AsyncSession, topic: str, user_id: uuid.UUID) -> None:
    """identity.user_registered / email_verified / phone_verified {user_id} (no PII)."""
    emit(session, topic=topic, key=str(user_id), payload={"user_id": str(user_id)})


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
    await _send_token_email(session, env=env, user=user, purpose="verify_email")
    pair = await _start_session(session, env=env, user=user, meta=meta)
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
        if not await _check_second_factor(session, env=env, user=user, code=totp_code):
            await _count_failure(session, env=env, user=user, meta=meta, reason="totp")
            raise InvalidTotp()
    user.failed_login_count = 0
    user.locked_until = None
    if env.passwords.needs_rehash(user.password_hash):
        user.password_hash = await env.passwords.hash(password)
        log.info("password rehashed with current parameters", extra={"user_id": str(user.id)})
    pair = await _start_session(session, env=env, user=user, meta=meta)
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
    return await _issue_tokens(session, env=env, auth_session=auth_session, now=now)


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
    keys = await _revoke_all_api_keys(
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
    user = await _require_user(session, caller.id)
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
            and await _check_second_factor(session, env=env, user=user, code=totp_code)
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


# --- the user's own account ----------------------------------------------------------------


async def get_user(*, session: AsyncSession, user_id: uuid.UUID) -> UserRead | None:
    user = await repo.user_by_id(session, user_id)
    return None if user is None else user_read(user)


async def get_users(
    *, session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, UserRead]:
    """Many users in one query (the notification fan-out); missing ids are absent."""
    return {u.id: user_read(u) for u in await repo.users_by_ids(session, user_ids)}


async def get_user_by_email(*, session: AsyncSession, email: str) -> UserRead | None:
    user = await repo.user_by_email(session, normalize_email(email))
    return None if user is None else user_read(user)


async def _require_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repo.user_by_id(session, user_id, lock=True)
    if user is None:
        raise NotFound("User not found", code="USER_NOT_FOUND")
    return user


async def update_me(*, session: AsyncSession, user_id: uuid.UUID, data: UserUpdate) -> UserRead:
    user = await _require_user(session, user_id)
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
    user = await _require_user(session, user_id)
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
    keys = await _revoke_all_api_keys(
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
    user = await _require_user(session, row.user_id)
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
    await _send_token_email(session, env=env, user=user, purpose="verify_email")


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
    await _send_token_email(session, env=env, user=user, purpose="reset_password")
    record_audit(session, action="password.reset_requested", meta=meta, actor_id=user.id)


async def reset_password(
    *, session: AsyncSession, env: IdentityEnv, token: str, password: str, meta: RequestMeta
) -> None:
    """Set a new password from an emailed token; every session is revoked, the lock lifted."""
    row = await repo.one_time_token_for_update(session, sha256_hex(token), "reset_password")
    now = utcnow()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise InvalidToken("Invalid or expired token")
    user = await _require_user(session, row.user_id)
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
    keys = await _revoke_all_api_keys(
        session, user_id=user.id, now=now, reason="password_reset", meta=meta
    )
    record_audit(
        session,
        action="password.reset",
        meta=meta,
        actor_id=user.id,
        details={"sessions_revoked": revoked, "api_keys_revoked": keys},
    )


# --- for other modules and operators --------------------------------------------------------


async def restrict_user(*, session: AsyncSession, user_id: uuid.UUID, reason: str) -> None:
    """May sign in and read, not move money or trade (e.g. failed KYC, chargeback)."""
    await set_status(session=session, user_id=user_id, status="restricted", reason=reason)


async def lift_restriction(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    reason_prefix: str,
    reason: str,
) -> bool:
    """Make a restricted account active again, only if it was restricted with a reason that
    starts with `reason_prefix` (e.g. the funding module's negative balance, once repaid).
    Audited like any status change. True if lifted."""
    user = await _require_user(session, user_id)
    if user.status != "restricted" or not (user.status_reason or "").startswith(reason_prefix):
        return False
    await set_status(session=session, user_id=user_id, status="active", reason=reason)
    return True


async def set_status(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    status: str,
    reason: str | None = None,
    actor_id: uuid.UUID | None = None,
    meta: RequestMeta | None = None,
) -> None:
    """Change an account's status; suspending or closing also ends every session."""
    if status not in ("active", "restricted", "suspended", "closed"):
        raise Unprocessable(f"Unknown status {status!r}", code="INVALID_STATUS")
    user = await _require_user(session, user_id)
    previous = user.status
    user.status = status
    user.status_reason = reason
    if status in DISABLED_STATUSES:
        await repo.revoke_user_sessions(session, user.id, utcnow(), status)
    record_audit(
        session,
        action="user.status",
        meta=meta,
        actor_id=actor_id,
        resource=f"user:{user.id}",
        details={"from": previous, "to": status, "reason": reason},
    )
    await session.flush()


async def set_phone_verified(*, session: AsyncSession, user_id: uuid.UUID, phone: str) -> None:
    """Record a phone number as verified (called by the module that ran the OTP check)."""
    user = await _require_user(session, user_id)
    user.phone = phone
    user.phone_verified_at = utcnow()
    emit_user_event(session, "identity.phone_verified", user.id)
    await session.flush()


async def mark_email_verified(*, session: AsyncSession, user_id: uuid.UUID) -> None:
    user = await _require_user(session, user_id)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
        emit_user_event(session, "identity.email_verified", user.id)
    await session.flush()


async def is_email_verified(*, session: AsyncSession, user_id: uuid.UUID) -> bool:
    user = await repo.user_by_id(session, user_id)
    return user is not None and user.email_verified_at is not None


async def set_role(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    role: str,
    actor_id: uuid.UUID | None = None,
    meta: RequestMeta | None = None,
) -> None:
    if role not in ("user", "admin"):
        raise Unprocessable(f"Unknown role {role!r}", code="INVALID_ROLE")
    user = await _require_user(session, user_id)
    previous = user.role
    user.role = role
    record_audit(
        session,
        action="user.role",
        meta=meta,
        actor_id=actor_id,
        resource=f"user:{user.id}",
        details={"from": previous, "to": role},
    )
    await session.flush()


async def grant_admin(*, session: AsyncSession, email: str) -> UserRead:
    user = await repo.user_by_email(session, normalize_email(email))
    if user is None:
        raise NotFound("User not found", code="USER_NOT_FOUND")
    await set_role(session=session, user_id=user.id, role="admin")
    return user_read(user)


async def audit_entries(
    *, session: AsyncSession, actor_id: uuid.UUID | None = None, limit: int = 100
) -> Sequence[dict[str, Any]]:
    rows = await repo.audit_entries(session, actor_id=actor_id, limit=limit)
    return [
        {
            "id": r.id,
            "occurred_at": r.occurred_at,
            "actor_id": r.actor_id,
            "action": r.action,
            "resource": r.resource,
            "ip": r.ip,
            "user_agent": r.user_agent,
            "request_id": r.request_id,
            "details": r.details,
        }
        for r in rows
    ]


async def outbound_emails(
    *, session: AsyncSession, to_address: str | None = None, after_id: int = 0
) -> list[Email]:
    """Mail the table sender holds (tests read it; `pull dev` shows it)."""
    rows = await repo.outbound_emails(
        session, to_address=normalize_email(to_address) if to_address else None, after_id=after_id
    )
    return [Email(to=r.to_address, subject=r.subject, body=r.body, kind=r.kind) for r in rows]


async def _check_second_factor(
    session: AsyncSession, *, env: IdentityEnv, user: User, code: str
) -> bool:
    """A TOTP code (never one already accepted) or an unused recovery code (spent now)."""
    if user.totp_secret_enc is None:
        return False
    secret = env.cipher.decrypt(user.totp_secret_enc)
    step = totp.matching_step(secret, code, after_step=user.totp_last_step)
    if step is not None:
        user.totp_last_step = step
        return True
    normalized = totp.normalize_recovery_code(code)
    if normalized is None:
        return False
    return await repo.use_recovery_code(session, user.id, sha256_hex(normalized), utcnow())


# --- two-factor authentication --------------------------------------------------------------


async def totp_setup(
    *, session: AsyncSession, env: IdentityEnv, user_id: uuid.UUID, meta: RequestMeta
) -> TotpSetupResponse:
    """Start (or restart) enrolment: a new secret, active only once a code proves it works."""
    user = await _require_user(session, user_id)
    if user.totp_enabled_at is not None:
        raise Conflict("Two-factor authentication is already on", code="TOTP_ALREADY_ENABLED")
    secret = totp.new_secret()
    user.totp_secret_enc = env.cipher.encrypt(secret)
    user.totp_last_step = None
    record_audit(session, action="2fa.setup", meta=meta, actor_id=user.id)
    await session.flush()
    return TotpSetupResponse(otpauth_uri=totp.provisioning_uri(secret, user.email), secret=secret)


async def _new_recovery_codes(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    codes = totp.new_recovery_codes()
    hashes = [sha256_hex(totp.normalize_recovery_code(c) or c) for c in codes]
    await repo.replace_recovery_codes(session, user_id, hashes)
    return codes


async def totp_enable(
    *, session: AsyncSession, env: IdentityEnv, user_id: uuid.UUID, code: str, meta: RequestMeta
) -> RecoveryCodesResponse:
    """Turn 2FA on with a first valid code; answers with the recovery codes, shown once."""
    user = await _require_user(session, user_id)
    if user.totp_enabled_at is not None:
        raise Conflict("Two-factor authentication is already on", code="TOTP_ALREADY_ENABLED")
    if user.totp_secret_enc is None:
        raise Conflict("Call /api/auth/2fa/setup first", code="TOTP_NOT_SET_UP")
    step = totp.matching_step(env.cipher.decrypt(user.totp_secret_enc), code)
    if step is None:
        raise Unprocessable("Invalid two-factor code", code="INVALID_TOTP")
    user.totp_last_step = step
    user.totp_enabled_at = utcnow()
    codes = await _new_recovery_codes(session, user.id)
    record_audit(session, action="2fa.enable", meta=meta, actor_id=user.id)
    return RecoveryCodesResponse(recovery_codes=codes)


async def _require_second_factor(
    session: AsyncSession, *, env: IdentityEnv, user: User, code: str
) -> None:
    if user.totp_enabled_at is None:
        raise Conflict("Two-factor authentication is off", code="TOTP_NOT_ENABLED")
    if not await _check_second_factor(session, env=env, user=user, code=code):
        raise Unprocessable("Invalid two-factor code", code="INVALID_TOTP")


async def totp_disable(
    *, session: AsyncSession, env: IdentityEnv, user_id: uuid.UUID, code: str, meta: RequestMeta
) -> None:
    """Turn 2FA off with a current code or a recovery code; the recovery codes are dropped."""
    user = await _require_user(session, user_id)
    await _require_second_factor(session, env=env, user=user, code=code)
    user.totp_secret_enc = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    await repo.delete_recovery_codes(session, user.id)
    record_audit(session, action="2fa.disable", meta=meta, actor_id=user.id)


async def regenerate_recovery_codes(
    *, session: AsyncSession, env: IdentityEnv, user_id: uuid.UUID, code: str, meta: RequestMeta
) -> RecoveryCodesResponse:
    """Replace every recovery code (the old ones stop working); needs a current 2FA code."""
    user = await _require_user(session, user_id)
    await _require_second_factor(session, env=env, user=user, code=code)
    codes = await _new_recovery_codes(session, user.id)
    record_audit(session, action="2fa.recovery_codes", meta=meta, actor_id=user.id)
    return RecoveryCodesResponse(recovery_codes=codes)


# --- API keys and signed requests ----------------------------------------------------------


async def _revoke_all_api_keys(
    session: AsyncSession, *, user_id: uuid.UUID, now: dt.datetime, reason: str, meta: RequestMeta
) -> int:
    ids = await repo.revoke_user_api_keys(session, user_id, now, reason)
    for key_id in ids:
        record_audit(
            session,
            action="api_key.revoke",
            meta=meta,
            actor_id=user_id,
            resource=f"api_key:{key_id}",
            details={"reason": reason},
        )
    return len(ids)


def check_can_create_api_key(
    *, session: AsyncSession, caller: AuthUser, meta: RequestMeta, now: dt.datetime | None = None
) -> None:
    """Only a session that proved the password or a 2FA code in the last 5 minutes may create
    a key; a request signed with an API key never may. Refusals are audited."""
    reason = None
    if caller.session_id is None:
        reason = "signed_request"
    elif caller.authenticated_at is None or caller.authenticated_at < (
        (now or utcnow()) - RECENT_AUTH_WINDOW
    ):
        reason = "not_recently_authenticated"
    if reason is None:
        return
    record_audit(
        session,
        action="api_key.create_refused",
        meta=meta,
        actor_id=caller.id,
        details={"reason": reason},
    )
    raise SignedRequestCannotCreateKeys() if reason == "signed_request" else RecentAuthRequired()


async def create_api_key(
    *, session: AsyncSession, caller: AuthUser, data: ApiKeyCreate, meta: RequestMeta
) -> ApiKeyRead:
    """Register an RSA public key (2048 bits or more); the private key never reaches us."""
    check_can_create_api_key(session=session, caller=caller, meta=meta)
    user_id = caller.id
    key = signing.load_rsa_public_key(data.public_key_pem)
    if await repo.count_api_keys(session, user_id) >= MAX_API_KEYS:
        raise Conflict(f"At most {MAX_API_KEYS} API keys per account", code="TOO_MANY_API_KEYS")
    row = await repo.add_api_key(
        session,
        ApiKey(
            id=uuid.uuid4(),
            user_id=user_id,
            name=data.name.strip(),
            public_key_pem=signing.public_pem(key),
            fingerprint=signing.fingerprint(key),
            created_at=utcnow(),
        ),
    )
    record_audit(
        session,
        action="api_key.create",
        meta=meta,
        actor_id=user_id,
        resource=f"api_key:{row.id}",
        details={"fingerprint": row.fingerprint},
    )
    return _api_key_read(row)


def _api_key_read(row: ApiKey) -> ApiKeyRead:
    return ApiKeyRead(
        key_id=row.id,
        name=row.name,
        fingerprint=row.fingerprint,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
    )


async def list_api_keys(
    *, session: AsyncSession, user_id: uuid.UUID, include_revoked: bool = False
) -> list[ApiKeyRead]:
    rows = await repo.api_keys_of(session, user_id, include_revoked=include_revoked)
    return [_api_key_read(row) for row in rows]


async def revoke_api_key(
    *, session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID, meta: RequestMeta
) -> None:
    if not await repo.revoke_api_key(session, user_id, key_id, utcnow()):
        raise NotFound("API key not found", code="API_KEY_NOT_FOUND")
    record_audit(
        session, action="api_key.revoke", meta=meta, actor_id=user_id, resource=f"api_key:{key_id}"
    )


@dataclass(frozen=True)
class KeyAuth:
    """A live API key's owner (enabled or not: the caller decides) and its public key."""

    key_id: uuid.UUID
    user: AuthUser
    public_key_pem: str
    last_used_at: dt.datetime | None = None


async def api_key_auth(*, session: AsyncSession, key_id: uuid.UUID) -> KeyAuth | None:
    """The live API key `key_id` and its owner, from PostgreSQL."""
    found = await repo.api_key_with_user(session, key_id)
    if found is None or found[0].revoked_at is not None:
        return None
    key_row, user = found
    return KeyAuth(
        key_id=key_id,
        user=AuthUser(
            id=user.id,
            email=user.email,
            role=user.role,
            status=user.status,
            session_id=None,
            totp_enabled=user.totp_enabled_at is not None,
        ),
        public_key_pem=key_row.public_key_pem,
        last_used_at=key_row.last_used_at,
    )


async def touch_api_key(*, session: AsyncSession, key: KeyAuth) -> None:
    """Record the key's use (at most once a minute: a write on every request would cost more
    than the request)."""
    now = utcnow()
    if key.last_used_at is None or key.last_used_at < now - SESSION_TOUCH_INTERVAL:
        await repo.touch_api_key(session, key.key_id, now, now - SESSION_TOUCH_INTERVAL)


def check_signed(
    key: KeyAuth | None, *, timestamp: str, signature: str, method: str, path: str
) -> AuthUser:
    """The key's owner if its RSA-PSS signature over timestamp+method+path holds."""
    if key is None:
        raise signing.BadSignature("Unknown API key")
    signing.verify(key.public_key_pem, signature, timestamp + method.upper() + path)
    if key.user.status in DISABLED_STATUSES:
        raise signing.BadSignature("Account is not active")
    return key.user


def parse_key_id(key_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(key_id)
    except ValueError:
        raise signing.BadSignature("Unknown API key") from None


async def authenticate_signed(
    *,
    session: AsyncSession,
    key_id: str,
    timestamp: str,
    signature: str,
    method: str,
    path: str,
    now_ms: int | None = None,
) -> AuthUser:
    """The owner of a live API key whose RSA-PSS signature over timestamp+method+path holds."""
    signing.check_timestamp(timestamp, now_ms=now_ms)
    key = await api_key_auth(session=session, key_id=parse_key_id(key_id))
    user = check_signed(key, timestamp=timestamp, signature=signature, method=method, path=path)
    assert key is not None
    await touch_api_key(session=session, key=key)
    return user


async def referred_users(
    *, session: AsyncSession, referrer_id: uuid.UUID, limit: int = 500
) -> list[tuple[uuid.UUID, dt.datetime]]:
    """(user id, signed-up at) of those who registered with this user's referral code."""
    return await repo.referred_users(session, referrer_id, limit)


@dataclass(frozen=True)
class UserMilestones:
    id: uuid.UUID
    created_at: dt.datetime
    email_verified_at: dt.datetime | None
    phone_verified_at: dt.datetime | None


async def user_milestones(
    *, session: AsyncSession, after: uuid.UUID | None, limit: int
) -> list[UserMilestones]:
    """Sign-up and verification times by user id (no PII), for the analytics backfill."""
    return [UserMilestones(*r) for r in await repo.users_after(session, after, limit)]


async def phones_ever_verified(*, session: AsyncSession, user_id: uuid.UUID) -> set[str]:
    """Numbers the user has verified, now or before (fraud checks such as self-referral:
    verified numbers are unique at a time, but one can move between accounts)."""
    return await repo.phones_ever_verified(session, user_id)


async def display_names(
    *, session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str | None]:
    """The display names users chose (None when unset), for public boards that opt in."""
    if not user_ids:
        return {}
    return await repo.display_names(session, user_ids)


async def email_user(
    *,
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    subject: str,
    body: str,
    kind: str,
) -> bool:
    """Send a notice to a user's address through the configured mailer (in development and
    tests the `outbound_emails` table, in the caller's transaction). False when there is no
    such user or the account is closed."""
    user = await repo.user_by_id(session, user_id)
    if user is None or user.status == "closed":
        return False
    await sender_for(settings).send(
        session=session, email=Email(to=user.email, subject=subject, body=body, kind=kind)
    )
    return True


async def referrers_of(
    *, session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """Who referred each of these users (only those who signed up with a code), in one read."""
    if not user_ids:
        return {}
    return await repo.referrers_of(session, user_ids)
