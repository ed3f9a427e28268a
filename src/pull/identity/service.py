"""Identity business rules that other modules use (users, registration, the audit log,
operators' actions, referrals) and the helpers the identity flows share. The routers' own flows
live beside it: `auth` (register, log in, sessions), `account` (the user's own account, e-mail
verification, password reset), `two_factor`, `api_keys` and `phone`; each imports this module,
never the other way round.

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
from pull.identity.mailer import Email, EmailSender, sender_for
from pull.identity.models import AuditLog, AuthSession, OneTimeToken, RefreshToken, User
from pull.identity.passwords import Passwords, check_password_policy
from pull.identity.providers import PhoneVerifier, verifier_for
from pull.identity.schemas import (
    RequestMeta,
    TokenPair,
    UserRead,
)
from pull.kit.crypto import FieldCipher, random_token, sha256_hex
from pull.kit.db import utcnow
from pull.kit.errors import Conflict, NotFound, Unprocessable
from pull.kit.outbox import emit
from pull.kit.tokens import encode_access_token

log = logging.getLogger("pull.identity")

REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
REFERRAL_LENGTH = 8
VERIFY_EMAIL_TTL = dt.timedelta(hours=24)
RESET_PASSWORD_TTL = dt.timedelta(hours=1)
SESSION_TOUCH_INTERVAL = dt.timedelta(minutes=1)
DISABLED_STATUSES = ("suspended", "closed")


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


async def issue_tokens(
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


async def start_session(
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
    return await issue_tokens(session, env=env, auth_session=auth_session, now=now)


async def send_token_email(
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


async def require_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repo.user_by_id(session, user_id, lock=True)
    if user is None:
        raise NotFound("User not found", code="USER_NOT_FOUND")
    return user


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
    user = await require_user(session, user_id)
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
    user = await require_user(session, user_id)
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
    user = await require_user(session, user_id)
    user.phone = phone
    user.phone_verified_at = utcnow()
    emit_user_event(session, "identity.phone_verified", user.id)
    await session.flush()


async def mark_email_verified(*, session: AsyncSession, user_id: uuid.UUID) -> None:
    user = await require_user(session, user_id)
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
    user = await require_user(session, user_id)
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
