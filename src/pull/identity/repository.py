"""All SQL of the identity module. Functions flush at most; the caller's boundary commits."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    DateTime,
    String,
    any_,
    bindparam,
    delete,
    func,
    literal,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import auth_cache
from pull.identity.models import (
    ApiKey,
    AuditLog,
    AuthSession,
    OneTimeToken,
    OutboundEmail,
    OutboundSms,
    PhoneVerification,
    RecoveryCode,
    RefreshToken,
    User,
)

# --- users ---------------------------------------------------------------------------------


async def user_by_id(
    session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False
) -> User | None:
    if not lock:
        # Served from the identity map when this session already loaded the row.
        return await session.get(User, user_id)
    stmt = select(User).where(User.id == user_id).with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def users_by_ids(session: AsyncSession, user_ids: Sequence[uuid.UUID]) -> list[User]:
    if not user_ids:
        return []
    # one uuid[] parameter (`= ANY`), not an IN of a bind parameter per id (the fan-out's
    # chunks of 100 recipients)
    ids = bindparam(None, list(user_ids), type_=ARRAY(UUID(as_uuid=True)))
    return list((await session.scalars(select(User).where(User.id == any_(ids)))).all())


async def user_by_email(session: AsyncSession, email: str, *, lock: bool = False) -> User | None:
    stmt = select(User).where(User.email == email)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def user_id_by_referral_code(session: AsyncSession, code: str) -> uuid.UUID | None:
    return (await session.scalars(select(User.id).where(User.referral_code == code))).one_or_none()


async def referral_code_taken(session: AsyncSession, code: str) -> bool:
    return await user_id_by_referral_code(session, code) is not None


async def email_taken(session: AsyncSession, email: str) -> bool:
    found = await session.scalar(select(func.count()).select_from(User).where(User.email == email))
    return bool(found)


async def add_user(session: AsyncSession, user: User) -> User:
    session.add(user)
    await session.flush()
    return user


# --- sessions and refresh tokens -----------------------------------------------------------


async def add_session(session: AsyncSession, auth_session: AuthSession) -> AuthSession:
    session.add(auth_session)
    await session.flush()
    return auth_session


@dataclass(frozen=True)
class SessionAuth:
    user_id: uuid.UUID
    revoked_at: dt.datetime | None
    expires_at: dt.datetime
    last_used_at: dt.datetime
    email: str
    role: str
    status: str
    totp_enabled_at: dt.datetime | None
    authenticated_at: dt.datetime | None


async def session_auth(session: AsyncSession, session_id: uuid.UUID) -> SessionAuth | None:
    """What the per-request authentication check needs, in one query of plain columns
    (no ORM objects: this runs on every authenticated request)."""
    row = (
        await session.execute(
            select(
                AuthSession.user_id,
                AuthSession.revoked_at,
                AuthSession.expires_at,
                AuthSession.last_used_at,
                User.email,
                User.role,
                User.status,
                User.totp_enabled_at,
                AuthSession.authenticated_at,
            )
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.id == session_id)
        )
    ).one_or_none()
    return None if row is None else SessionAuth(*row)


async def session_by_id(
    session: AsyncSession, session_id: uuid.UUID, *, lock: bool = False
) -> AuthSession | None:
    stmt = select(AuthSession).where(AuthSession.id == session_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def touch_session(
    session: AsyncSession, session_id: uuid.UUID, now: dt.datetime, older_than: dt.datetime
) -> None:
    """Record use, at most once per interval, so reads do not write on every request."""
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.last_used_at < older_than)
        .values(last_used_at=now)
    )


async def mark_session_authenticated(
    session: AsyncSession, session_id: uuid.UUID, now: dt.datetime
) -> None:
    result = await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id)
        .values(authenticated_at=now)
        .returning(AuthSession.user_id)
    )
    for user_id in result.scalars():
        auth_cache.mark(session, user_id)


async def active_sessions(
    session: AsyncSession, user_id: uuid.UUID, now: dt.datetime
) -> Sequence[AuthSession]:
    return (
        await session.scalars(
            select(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .order_by(AuthSession.last_used_at.desc())
        )
    ).all()


async def revoke_session(
    session: AsyncSession, session_id: uuid.UUID, now: dt.datetime, reason: str
) -> bool:
    result = await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .returning(AuthSession.user_id)
    )
    owners = list(result.scalars())
    for user_id in owners:
        auth_cache.mark(session, user_id)
    return bool(owners)


async def revoke_user_sessions(
    session: AsyncSession,
    user_id: uuid.UUID,
    now: dt.datetime,
    reason: str,
    *,
    except_session: uuid.UUID | None = None,
) -> int:
    stmt = (
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    if except_session is not None:
        stmt = stmt.where(AuthSession.id != except_session)
    auth_cache.mark(session, user_id)
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0))


async def add_refresh_token(session: AsyncSession, token: RefreshToken) -> None:
    session.add(token)
    await session.flush()


async def refresh_token_for_update(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    """Locked, so two concurrent uses of one token cannot both rotate it."""
    return (
        await session.scalars(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
        )
    ).one_or_none()


# --- one-time tokens -----------------------------------------------------------------------


async def add_one_time_token(session: AsyncSession, token: OneTimeToken) -> None:
    session.add(token)
    await session.flush()


async def one_time_token_for_update(
    session: AsyncSession, token_hash: str, purpose: str
) -> OneTimeToken | None:
    return (
        await session.scalars(
            select(OneTimeToken)
            .where(OneTimeToken.token_hash == token_hash, OneTimeToken.purpose == purpose)
            .with_for_update()
        )
    ).one_or_none()


async def latest_one_time_token_at(
    session: AsyncSession, user_id: uuid.UUID, purpose: str
) -> dt.datetime | None:
    return await session.scalar(
        select(func.max(OneTimeToken.created_at)).where(
            OneTimeToken.user_id == user_id, OneTimeToken.purpose == purpose
        )
    )


async def expire_one_time_tokens(
    session: AsyncSession, user_id: uuid.UUID, purpose: str, now: dt.datetime
) -> None:
    """Spend every outstanding token of a purpose (a newer one, or a completed reset, wins)."""
    await session.execute(
        update(OneTimeToken)
        .where(
            OneTimeToken.user_id == user_id,
            OneTimeToken.purpose == purpose,
            OneTimeToken.used_at.is_(None),
        )
        .values(used_at=now)
    )


# --- recovery codes ------------------------------------------------------------------------


async def replace_recovery_codes(
    session: AsyncSession, user_id: uuid.UUID, hashes: Sequence[str]
) -> None:
    await delete_recovery_codes(session, user_id)
    session.add_all([RecoveryCode(user_id=user_id, code_hash=h) for h in hashes])
    await session.flush()


async def delete_recovery_codes(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))


async def use_recovery_code(
    session: AsyncSession, user_id: uuid.UUID, code_hash: str, now: dt.datetime
) -> bool:
    """Spend a matching unused code; False when none matched (atomic: one use only)."""
    result = await session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == code_hash,
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


async def unused_recovery_code_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )
    return int(count or 0)


# --- API keys ------------------------------------------------------------------------------


async def add_api_key(session: AsyncSession, key: ApiKey) -> ApiKey:
    session.add(key)
    await session.flush()
    return key


async def api_keys_of(
    session: AsyncSession, user_id: uuid.UUID, *, include_revoked: bool = False
) -> Sequence[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return (await session.scalars(stmt)).all()


async def count_api_keys(session: AsyncSession, user_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
    )
    return int(count or 0)


async def api_key_with_user(session: AsyncSession, key_id: uuid.UUID) -> tuple[ApiKey, User] | None:
    row = (
        await session.execute(
            select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.id == key_id)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


async def revoke_api_key(
    session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID, now: dt.datetime
) -> bool:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason="user")
    )
    done = bool(getattr(result, "rowcount", 0))
    if done:
        auth_cache.mark(session, user_id)
    return done


async def revoke_user_api_keys(
    session: AsyncSession, user_id: uuid.UUID, now: dt.datetime, reason: str
) -> list[uuid.UUID]:
    """Revoke every live key of the user; the ids revoked."""
    auth_cache.mark(session, user_id)
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .returning(ApiKey.id)
    )
    return list(result.scalars().all())


async def touch_api_key(
    session: AsyncSession, key_id: uuid.UUID, now: dt.datetime, older_than: dt.datetime
) -> None:
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < older_than),
        )
        .values(last_used_at=now)
    )


# --- audit log and outbound email ----------------------------------------------------------


def add_audit(session: AsyncSession, entry: AuditLog) -> None:
    session.add(entry)


async def audit_entries(
    session: AsyncSession, *, actor_id: uuid.UUID | None = None, limit: int = 100
) -> Sequence[AuditLog]:
    stmt = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if actor_id is not None:
        stmt = stmt.where(AuditLog.actor_id == actor_id)
    return (await session.scalars(stmt)).all()


def add_outbound_email(session: AsyncSession, email: OutboundEmail) -> None:
    session.add(email)


async def add_outbound_emails(
    session: AsyncSession, rows: Sequence[tuple[str, str, str, str]]
) -> None:
    """(to, subject, body, kind) rows in one statement over arrays (a fixed text asyncpg
    prepares once)."""
    if not rows:
        return
    await session.execute(
        text(
            "INSERT INTO outbound_emails (to_address, subject, body, kind) "
            "SELECT * FROM unnest(CAST(:to AS text[]), CAST(:subject AS text[]), "
            "CAST(:body AS text[]), CAST(:kind AS text[]))"
        ),
        {
            "to": [r[0] for r in rows],
            "subject": [r[1][:200] for r in rows],
            "body": [r[2] for r in rows],
            "kind": [r[3][:40] for r in rows],
        },
    )


async def outbound_emails(
    session: AsyncSession, *, to_address: str | None = None, after_id: int = 0, limit: int = 100
) -> Sequence[OutboundEmail]:
    stmt = (
        select(OutboundEmail)
        .where(OutboundEmail.id > after_id)
        .order_by(OutboundEmail.id)
        .limit(limit)
    )
    if to_address is not None:
        stmt = stmt.where(OutboundEmail.to_address == to_address)
    return (await session.scalars(stmt)).all()


@dataclass(frozen=True)
class BoxRow:
    channel: str
    id: int
    to: str
    subject: str | None
    body: str
    created_at: dt.datetime


def add_outbound_sms(session: AsyncSession, sms: OutboundSms) -> None:
    session.add(sms)


async def sandbox_messages(
    session: AsyncSession,
    *,
    email: str,
    phone: str | None,
    before: tuple[dt.datetime, str, int] | None,
    limit: int,
) -> list[BoxRow]:
    """Mail to `email` and texts to `phone`, newest first, keyset-paged on
    (created_at, channel, id) below `before`."""
    mails = select(
        literal("email").label("channel"),
        OutboundEmail.id.label("id"),
        OutboundEmail.to_address.label("to"),
        OutboundEmail.subject.label("subject"),
        OutboundEmail.body.label("body"),
        OutboundEmail.created_at.label("created_at"),
    ).where(OutboundEmail.to_address == email)
    parts = [mails]
    if phone:
        parts.append(
            select(
                literal("sms").label("channel"),
                OutboundSms.id.label("id"),
                OutboundSms.to_number.label("to"),
                literal(None, String()).label("subject"),
                OutboundSms.body.label("body"),
                OutboundSms.created_at.label("created_at"),
            ).where(OutboundSms.to_number == phone)
        )
    box = union_all(*parts).subquery("box")
    stmt = select(box.c.channel, box.c.id, box.c.to, box.c.subject, box.c.body, box.c.created_at)
    if before is not None:
        stmt = stmt.where(
            tuple_(box.c.created_at, box.c.channel, box.c.id)
            < tuple_(
                literal(before[0], DateTime(timezone=True)),
                literal(before[1], String()),
                literal(before[2], BigInteger()),
            )
        )
    stmt = stmt.order_by(box.c.created_at.desc(), box.c.channel.desc(), box.c.id.desc()).limit(
        limit
    )
    return [BoxRow(*row) for row in (await session.execute(stmt)).all()]


# --- phone verification --------------------------------------------------------------------


async def lock_phone_number(session: AsyncSession, phone: str) -> None:
    """Serialize sends to one number across accounts (a transaction-scoped advisory lock)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": "phone:" + phone}
    )


async def user_id_with_verified_phone(session: AsyncSession, phone: str) -> uuid.UUID | None:
    return (
        await session.scalars(
            select(User.id).where(User.phone == phone, User.phone_verified_at.is_not(None))
        )
    ).one_or_none()


@dataclass(frozen=True)
class SendStats:
    count: int
    oldest: dt.datetime | None
    latest: dt.datetime | None


async def phone_sends_since(
    session: AsyncSession,
    *,
    since: dt.datetime,
    user_id: uuid.UUID | None = None,
    phone: str | None = None,
) -> SendStats:
    stmt = select(
        func.count(), func.min(PhoneVerification.created_at), func.max(PhoneVerification.created_at)
    ).where(PhoneVerification.created_at > since)
    if user_id is not None:
        stmt = stmt.where(PhoneVerification.user_id == user_id)
    if phone is not None:
        stmt = stmt.where(PhoneVerification.phone == phone)
    count, oldest, latest = (await session.execute(stmt)).one()
    return SendStats(int(count or 0), oldest, latest)


async def add_phone_verification(session: AsyncSession, row: PhoneVerification) -> None:
    session.add(row)
    await session.flush()


async def cancel_pending_phone_verifications(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(
        update(PhoneVerification)
        .where(PhoneVerification.user_id == user_id, PhoneVerification.status == "pending")
        .values(status="canceled")
    )


async def latest_phone_verification(
    session: AsyncSession, user_id: uuid.UUID
) -> PhoneVerification | None:
    return (
        await session.scalars(
            select(PhoneVerification)
            .where(PhoneVerification.user_id == user_id)
            .order_by(PhoneVerification.created_at.desc())
            .limit(1)
            .with_for_update()
        )
    ).one_or_none()


async def referred_users(
    session: AsyncSession, referrer_id: uuid.UUID, limit: int
) -> list[tuple[uuid.UUID, dt.datetime]]:
    """(id, created_at) of the users who signed up with this user's referral code."""
    rows = await session.execute(
        select(User.id, User.created_at)
        .where(User.referred_by_id == referrer_id)
        .order_by(User.created_at)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in rows]


async def users_after(
    session: AsyncSession, after: uuid.UUID | None, limit: int
) -> Sequence[tuple[uuid.UUID, dt.datetime, dt.datetime | None, dt.datetime | None]]:
    """(id, created_at, email_verified_at, phone_verified_at) by id, for analytics backfill."""
    stmt = select(User.id, User.created_at, User.email_verified_at, User.phone_verified_at)
    if after is not None:
        stmt = stmt.where(User.id > after)
    rows = await session.execute(stmt.order_by(User.id).limit(limit))
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def phones_ever_verified(session: AsyncSession, user_id: uuid.UUID) -> set[str]:
    """Every number this user verified: the current one and those of approved checks."""
    rows = await session.execute(
        text(
            "SELECT phone FROM users WHERE id = :u AND phone_verified_at IS NOT NULL "
            "UNION SELECT phone FROM phone_verifications WHERE user_id = :u AND status = 'approved'"
        ),
        {"u": user_id},
    )
    return {str(r[0]) for r in rows if r[0]}


async def display_names(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str | None]:
    rows = await session.execute(
        select(User.id, User.display_name).where(User.id.in_(list(user_ids)))
    )
    return {r[0]: r[1] for r in rows}


async def referrers_of(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    rows = await session.execute(
        select(User.id, User.referred_by_id).where(
            User.id.in_(list(user_ids)), User.referred_by_id.is_not(None)
        )
    )
    return {r[0]: r[1] for r in rows if r[1] is not None}
