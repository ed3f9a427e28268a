"""Phone verification: a 6-digit code by SMS (Twilio Verify, or its sandbox), then a check.

Rules (docs/identity.md):
- numbers are normalized to E.164 with `phonenumbers`; one account per verified number;
- a code lives CODE_TTL and dies after MAX_ATTEMPTS wrong tries;
- at most one send per RESEND_INTERVAL, and HOURLY_SENDS per hour, per account and per number.
Like the rest of the identity service these functions never commit.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid

import phonenumbers
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import repository as repo
from pull.identity.errors import CodeExpired, InvalidCode
from pull.identity.models import PhoneVerification
from pull.identity.providers import CheckOutcome
from pull.identity.schemas import PhoneStartResponse, RequestMeta, UserRead
from pull.identity.service import IdentityEnv, emit_user_event, record_audit, user_read
from pull.kit.db import utcnow
from pull.kit.errors import BadRequest, Conflict, NotFound, TooManyRequests, Unprocessable

CODE_TTL = dt.timedelta(minutes=10)
MAX_ATTEMPTS = 5
RESEND_INTERVAL = dt.timedelta(seconds=30)
HOURLY_SENDS = 5
HOUR = dt.timedelta(hours=1)


def normalize_phone(raw: str) -> str:
    """E.164 of a number written with its country code; 422 INVALID_PHONE otherwise."""
    cleaned = raw.strip()
    if not cleaned.startswith("+") or "\x00" in cleaned:
        raise Unprocessable(
            "Give the number in international form, e.g. +14155550100", code="INVALID_PHONE"
        )
    try:
        number = phonenumbers.parse(cleaned, None)
    except phonenumbers.NumberParseException as exc:
        raise Unprocessable("Not a phone number", code="INVALID_PHONE") from exc
    if not phonenumbers.is_valid_number(number):
        raise Unprocessable("Not a valid phone number", code="INVALID_PHONE")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phone_taken() -> Conflict:
    return Conflict("Another account has verified this number", code="PHONE_TAKEN")


def _too_many(message: str, retry_at: dt.datetime, now: dt.datetime) -> TooManyRequests:
    retry = max(1, math.ceil((retry_at - now).total_seconds()))
    return TooManyRequests(
        message,
        code="TOO_MANY_CODES",
        details={"retry_after": retry},
        headers={"Retry-After": str(retry)},
    )


async def _check_send_limits(
    session: AsyncSession, *, user_id: uuid.UUID, phone: str, now: dt.datetime
) -> None:
    for scope, stats in (
        ("account", await repo.phone_sends_since(session, since=now - HOUR, user_id=user_id)),
        ("number", await repo.phone_sends_since(session, since=now - HOUR, phone=phone)),
    ):
        if stats.latest is not None and stats.latest > now - RESEND_INTERVAL:
            raise _too_many(
                f"A code was just sent; wait {int(RESEND_INTERVAL.total_seconds())} s",
                stats.latest + RESEND_INTERVAL,
                now,
            )
        if stats.count >= HOURLY_SENDS and stats.oldest is not None:
            raise _too_many(
                f"At most {HOURLY_SENDS} codes an hour per {scope}", stats.oldest + HOUR, now
            )


async def set_phone_by_operator(
    *, session: AsyncSession, user_id: uuid.UUID, phone: str, verified: bool
) -> str:
    """An operator's `pull users create --phone` (with `--verified`: no code is sent)."""
    number = normalize_phone(phone)
    user = await repo.user_by_id(session, user_id, lock=True)
    if user is None:
        raise NotFound("User not found", code="USER_NOT_FOUND")
    await repo.lock_phone_number(session, number)
    holder = await repo.user_id_with_verified_phone(session, number)
    if verified and holder is not None and holder != user.id:
        raise _phone_taken()
    user.phone = number
    user.phone_verified_at = utcnow() if verified else None
    await session.flush()
    return number


async def start_phone_verification(
    *,
    session: AsyncSession,
    env: IdentityEnv,
    user_id: uuid.UUID,
    phone: str,
    meta: RequestMeta,
) -> PhoneStartResponse:
    """Store the number (unverified when it changes) and text it a fresh code."""
    number = normalize_phone(phone)
    user = await repo.user_by_id(session, user_id, lock=True)
    if user is None:
        raise NotFound("User not found", code="USER_NOT_FOUND")
    if user.phone == number and user.phone_verified_at is not None:
        raise Conflict("This number is already verified", code="PHONE_ALREADY_VERIFIED")
    await repo.lock_phone_number(session, number)
    holder = await repo.user_id_with_verified_phone(session, number)
    if holder is not None and holder != user.id:
        raise _phone_taken()
    now = utcnow()
    await _check_send_limits(session, user_id=user.id, phone=number, now=now)
    sent = await env.phone_verifier.send_code(session=session, to=number)
    await repo.cancel_pending_phone_verifications(session, user.id)
    await repo.add_phone_verification(
        session,
        PhoneVerification(
            id=uuid.uuid4(),
            user_id=user.id,
            phone=number,
            provider=env.phone_verifier.name,
            provider_ref=sent.reference,
            status="pending",
            attempts=0,
            created_at=now,
            expires_at=now + CODE_TTL,
        ),
    )
    if user.phone != number:
        user.phone = number
        user.phone_verified_at = None
    record_audit(
        session,
        action="phone.code_sent",
        meta=meta,
        actor_id=user.id,
        details={"provider": env.phone_verifier.name, "phone_last2": number[-2:]},
    )
    await session.flush()
    return PhoneStartResponse(
        phone=number, expires_at=now + CODE_TTL, resend_after=now + RESEND_INTERVAL
    )


async def verify_phone(
    *,
    session: AsyncSession,
    env: IdentityEnv,
    user_id: uuid.UUID,
    code: str,
    meta: RequestMeta,
) -> UserRead:
    """Check the latest code; a wrong one is counted (and kept: the error persists)."""
    user = await repo.user_by_id(session, user_id, lock=True)
    if user is None:
        raise NotFound("User not found", code="USER_NOT_FOUND")
    row = await repo.latest_phone_verification(session, user.id)
    if row is None or row.status == "canceled" or row.phone != user.phone:
        raise BadRequest(
            "No code is waiting: ask for one with POST /api/auth/phone/start",
            code="NO_PENDING_CODE",
        )
    if row.status == "approved":
        raise Conflict("This number is already verified", code="PHONE_ALREADY_VERIFIED")
    now = utcnow()
    if row.status == "failed" or row.attempts >= MAX_ATTEMPTS:
        raise CodeExpired(details={"reason": "attempts"})
    if row.expires_at <= now:
        raise CodeExpired(details={"reason": "expired"})
    outcome = await env.phone_verifier.check_code(
        to=row.phone, reference=row.provider_ref, code=code
    )
    if outcome is CheckOutcome.expired:
        row.status = "failed"
        await session.flush()
        raise CodeExpired(details={"reason": "expired"})
    if outcome is CheckOutcome.wrong:
        row.attempts += 1
        left = MAX_ATTEMPTS - row.attempts
        if left <= 0:
            row.status = "failed"
        record_audit(
            session,
            action="phone.code_wrong",
            meta=meta,
            actor_id=user.id,
            details={"attempts_left": left},
        )
        await session.flush()
        raise InvalidCode(details={"attempts_left": left})
    holder = await repo.user_id_with_verified_phone(session, row.phone)
    if holder is not None and holder != user.id:
        raise _phone_taken()
    row.status = "approved"
    row.verified_at = now
    user.phone_verified_at = now
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # another account verified the number meanwhile
        raise _phone_taken() from exc
    emit_user_event(session, "identity.phone_verified", user.id)
    record_audit(
        session,
        action="phone.verify",
        meta=meta,
        actor_id=user.id,
        details={"phone_last2": row.phone[-2:]},
    )
    return user_read(user)
