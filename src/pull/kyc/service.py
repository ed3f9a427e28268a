"""The KYC module's public API: tiers and the one limit decision every money movement uses.

Funding and the exchange call `consume_limit` in the transaction that moves the money and
`release_limit` when the movement is undone (a failed deposit, an order's unfilled remainder).
Services never commit; the caller's boundary does.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import get_settings
from pull.identity import service as identity
from pull.kit.crypto import FieldCipher
from pull.kit.db import utcnow
from pull.kit.errors import Unprocessable
from pull.kit.outbox import emit
from pull.kyc import repository as repo
from pull.kyc.errors import KycRequired, LimitExceeded, ReferenceConflict
from pull.kyc.limits import WINDOWS, Action, LimitPolicy, Window, lowest_tier_allowing
from pull.kyc.schemas import Tier, VerifiedPerson

__all__ = [
    "KycRequired",
    "LimitExceeded",
    "LimitPolicy",
    "ReferenceConflict",
    "Tier",
    "VerifiedPerson",
    "consume_limit",
    "current_policy",
    "get_tier",
    "get_tiers",
    "instant_credit_cents",
    "release_limit",
    "set_tier",
    "verified_person",
]


@lru_cache(maxsize=8)
def _policy_for(overrides: str) -> LimitPolicy:
    return LimitPolicy.from_overrides(overrides)


def current_policy() -> LimitPolicy:
    """The limits in force: the default table with the KYC_LIMITS overrides."""
    return _policy_for(get_settings().kyc_limits)


def effective_tier(tier: str, expires_at: dt.datetime | None, now: dt.datetime) -> Tier:
    if expires_at is not None and expires_at <= now:
        return Tier.none
    return Tier(tier)


async def get_tier(
    *, session: AsyncSession, user_id: uuid.UUID, now: dt.datetime | None = None
) -> Tier:
    """The user's tier now (an approval past its expiry counts as none)."""
    row = await repo.profile(session, user_id)
    if row is None:
        return Tier.none
    return effective_tier(row.tier, row.expires_at, now or utcnow())


async def get_tiers(
    *, session: AsyncSession, user_ids: list[uuid.UUID], now: dt.datetime | None = None
) -> dict[uuid.UUID, Tier]:
    """`get_tier` for many users in one query (a fan-out's eligibility); absent: none."""
    at = now or utcnow()
    rows = await repo.profiles_tiers(session, user_ids)
    out = {u: Tier.none for u in user_ids}
    out.update({u: effective_tier(t, exp, at) for u, t, exp in rows})
    return out


async def set_tier(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    tier: Tier | str,
    actor_id: uuid.UUID | None,
    note: str | None,
    now: dt.datetime | None = None,
    valid_days: int | None = None,
) -> Tier:
    """Set a user's tier (workflow decision, admin approval, expiry), with an audit entry.

    A tier above none is valid for KYC_APPROVAL_VALID_DAYS (365) days from now.
    """
    new = Tier(tier)
    now = now or utcnow()
    row = await repo.ensure_profile(session, user_id)
    previous = effective_tier(row.tier, row.expires_at, now)
    row.tier = new.value
    if new is Tier.none:
        row.approved_at = None
        row.expires_at = None
        row.approved_by = None
    else:
        days = valid_days if valid_days is not None else get_settings().kyc_approval_valid_days
        row.approved_at = now
        row.expires_at = now + dt.timedelta(days=days)
        row.approved_by = actor_id
    row.expiry_reminded_at = None
    row.note = note
    identity.record_audit(
        session,
        action="kyc.tier",
        actor_id=actor_id,
        resource=f"user:{user_id}",
        details={"from": previous.value, "to": new.value, "note": note},
    )
    if new is not previous:
        emit(
            session,
            topic="kyc.tier_changed",
            key=str(user_id),
            payload={"user_id": str(user_id), "from": previous.value, "to": new.value},
        )
    await session.flush()
    return new


async def instant_credit_cents(
    *, session: AsyncSession, user_id: uuid.UUID, policy: LimitPolicy | None = None
) -> int:
    """How much of a pending deposit the user may spend before it settles (0 below standard)."""
    tier = await get_tier(session=session, user_id=user_id)
    return (policy or current_policy()).of(tier, "instant_credit")


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def _resets_at(
    session: AsyncSession,
    user_id: uuid.UUID,
    action: Action,
    window: Window,
    *,
    now: dt.datetime,
    limit: int,
    used: int,
    amount: int,
) -> dt.datetime | None:
    """When enough usage leaves the rolling window for `amount` to fit; when it never fits
    (amount above the limit itself), when the window is empty again; None if it already is."""
    rows = await repo.usage_rows_since(session, user_id, action, now - window.length)
    if not rows:
        return None
    if amount > limit:
        return rows[-1][0] + window.length
    need = used + amount - limit
    freed = 0
    for created_at, cents in rows:
        freed += cents
        if freed >= need:
            return created_at + window.length
    return rows[-1][0] + window.length


async def consume_limit(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    action: Literal["deposit", "withdrawal", "trade"],
    amount_cents: int,
    reference: str,
    now: dt.datetime | None = None,
    policy: LimitPolicy | None = None,
) -> None:
    """Check `amount_cents` of `action` against the user's tier and record it.

    403 KYC_REQUIRED {required_tier} below the first tier allowing the action;
    403 LIMIT_EXCEEDED {limit, used, remaining, resets_at, action, window} over the single-trade
    maximum or a rolling 24-hour / 30-day window. Recorded in the caller's transaction; the same
    `reference` counts once. The user's KYC row is locked FOR UPDATE, so concurrent calls for
    one user are decided one after the other.
    """
    if action not in WINDOWS:
        raise Unprocessable(f"Unknown limit action {action!r}", code="INVALID_ACTION")
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise Unprocessable("amount_cents must be a positive integer", code="INVALID_AMOUNT")
    if not reference or len(reference) > 200:
        raise Unprocessable("reference must be 1-200 characters", code="INVALID_REFERENCE")
    policy = policy or current_policy()
    now = now or utcnow()
    windows = WINDOWS[action]
    done = await repo.consume(
        session,
        user_id=user_id,
        action=action,
        reference=reference,
        amount_cents=amount_cents,
        now=now,
        limits=_limits_json(policy, action),
        since=[now - w.length for w in windows],
    )
    if done.outcome in ("ok", "replay"):
        return  # a replay of the same reference is already counted
    if done.outcome == "kyc_required":
        raise KycRequired(lowest_tier_allowing(policy, action).value)
    if done.outcome == "conflict":
        raise ReferenceConflict()
    tier = Tier(done.tier)
    if done.outcome == "single":
        single = policy.of(tier, "single_trade_max")
        raise LimitExceeded(
            limit=single,
            used=0,
            remaining=single,
            resets_at=None,
            action=action,
            window="single_trade",
        )
    assert done.outcome == "window" and done.window_index is not None and done.used is not None
    window = windows[done.window_index]
    limit = policy.of(tier, window.limit_name)
    resets = await _resets_at(
        session,
        user_id,
        action,
        window,
        now=now,
        limit=limit,
        used=done.used,
        amount=amount_cents,
    )
    raise LimitExceeded(
        limit=limit,
        used=done.used,
        remaining=max(limit - done.used, 0),
        resets_at=_iso(resets),
        action=action,
        window=window.name,
    )


_LIMITS_JSON: dict[tuple[int, str], tuple[LimitPolicy, str]] = {}


def _limits_json(policy: LimitPolicy, action: Action) -> str:
    """Every tier's limits for `action`, as `kyc_consume` reads them (kept per policy)."""
    cached = _LIMITS_JSON.get((id(policy), action))
    if cached is not None and cached[0] is policy:
        return cached[1]
    out: dict[str, dict[str, Any]] = {}
    for tier in Tier:
        entry: dict[str, Any] = {
            "windows": [policy.of(tier, w.limit_name) for w in WINDOWS[action]]
        }
        if action == "trade":
            entry["single"] = policy.of(tier, "single_trade_max")
        out[tier.value] = entry
    if len(_LIMITS_JSON) > 256:
        _LIMITS_JSON.clear()
    _LIMITS_JSON[(id(policy), action)] = (policy, json.dumps(out))
    return _LIMITS_JSON[(id(policy), action)][1]


async def release_limit(
    *, session: AsyncSession, reference: str, amount_cents: int | None = None
) -> None:
    """Give back what `reference` consumed: all of it, or `amount_cents` of it in total.

    `amount_cents` is the total given back for this reference, not an increment, so repeating a
    call changes nothing (a later, larger amount gives back the difference; never more than was
    consumed). An unknown reference is a no-op.
    """
    if amount_cents is not None and (isinstance(amount_cents, bool) or amount_cents < 0):
        raise Unprocessable("amount_cents must be >= 0", code="INVALID_AMOUNT")
    usage = await repo.usage_by_reference(session, reference, lock=True)
    if usage is None:
        return
    target = usage.amount_cents if amount_cents is None else min(amount_cents, usage.amount_cents)
    if target > usage.released_cents:
        usage.released_cents = target
        await session.flush()


async def verified_person(
    *, session: AsyncSession, user_id: uuid.UUID, cipher: FieldCipher
) -> VerifiedPerson | None:
    """The data of the user's latest approved application (None when there is none)."""
    app = await repo.latest_approved(session, user_id)
    if app is None:
        return None
    user = await identity.get_user(session=session, user_id=user_id)
    address = json.loads(cipher.decrypt(app.address_enc))
    return VerifiedPerson(
        application_id=str(app.id),
        tier=app.target_tier,
        email=user.email if user else "",
        first_name=cipher.decrypt(app.first_name_enc),
        last_name=cipher.decrypt(app.last_name_enc),
        dob=cipher.decrypt(app.dob_enc),
        phone=cipher.decrypt(app.phone_enc),
        line1=address["line1"],
        line2=address.get("line2"),
        city=address["city"],
        state=address["state"],
        postal_code=address["postal_code"],
        country=address.get("country", "US"),
        ssn_last4=cipher.decrypt(app.ssn_last4_enc) if app.ssn_last4_enc else None,
    )
