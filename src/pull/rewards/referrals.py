"""Referrals: a referee who signed up with a code (identity keeps `referred_by_id`), then
passed KYC and settled a first deposit of at least REWARDS_REFERRAL_MIN_DEPOSIT_CENTS, earns
both sides their points, once. A referrer is rewarded for at most REWARDS_REFERRAL_YEARLY_CAP
referees in a rolling 365 days. Self-referral (same verified phone, same bank account, same
device fingerprint, or a device already used by another rewarded referee) is refused."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.funding import service as funding
from pull.funding.schemas import BankAccountRead
from pull.identity import service as identity
from pull.rewards import points
from pull.rewards import repository as repo
from pull.rewards.models import Referral

YEAR = dt.timedelta(days=365)


async def _self_referral(
    session: AsyncSession, referee: uuid.UUID, referrer: uuid.UUID
) -> str | None:
    """Why this looks like one person on both sides (or a farm of referees), or None.

    - `same_phone`: a number both have verified, now or before (a verified number is unique
      at any one time, so the check covers numbers that moved from one account to the other);
    - `same_bank_account`: a linked bank account with the same institution, name and mask
      on both sides;
    - `same_device`: a device fingerprint both apps sent;
    - `device_reused`: the referee's device already belongs to another rewarded referee (one
      phone signing up many accounts under any code)."""
    a = await identity.get_user(session=session, user_id=referee)
    b = await identity.get_user(session=session, user_id=referrer)
    if a is None or b is None:
        return "unknown_user"
    mine_phones = await identity.phones_ever_verified(session=session, user_id=referee)
    if mine_phones and mine_phones & await identity.phones_ever_verified(
        session=session, user_id=referrer
    ):
        return "same_phone"

    def banks(items: list[BankAccountRead]) -> set[tuple[str | None, str, str | None]]:
        return {(x.institution_name, x.name, x.mask) for x in items if x.mask}

    mine = banks(await funding.list_bank_accounts(session=session, user_id=referee))
    theirs = banks(await funding.list_bank_accounts(session=session, user_id=referrer))
    if mine & theirs:
        return "same_bank_account"
    pa = await repo.profile(session, referee)
    pb = await repo.profile(session, referrer)
    devices = set(pa.device_fingerprints) if pa is not None else set()
    if pb is not None and devices & set(pb.device_fingerprints):
        return "same_device"
    if devices and await repo.rewarded_referees_with_devices(session, sorted(devices), referee):
        return "device_reused"
    return None


async def progress(
    *,
    session: AsyncSession,
    referee_id: uuid.UUID,
    topic: str,
    amount: int,
    settings: Settings,
    now: dt.datetime,
) -> set[uuid.UUID]:
    """Advance a referee's referral on kyc.approved / funding.deposit_settled; returns the
    users who earned qualifying points."""
    user = await identity.get_user(session=session, user_id=referee_id)
    if user is None or user.referred_by_id is None:
        return set()
    await repo.ensure_referral(session, referee_id, user.referred_by_id)
    ref = await repo.referral(session, referee_id, lock=True)
    assert ref is not None
    if ref.status in ("rewarded", "refused"):
        return set()
    if topic == "kyc.approved" and ref.kyc_passed_at is None:
        ref.kyc_passed_at = now
    if topic == "funding.deposit_settled" and ref.deposited_at is None:
        if amount < settings.rewards_referral_min_deposit_cents:
            ref.status = "refused"
            ref.refusal_reason = "first_deposit_too_small"
            return set()
        ref.deposited_at = now
    if ref.kyc_passed_at is None or ref.deposited_at is None:
        ref.status = "kyc_passed" if ref.kyc_passed_at else "deposited"
        return set()
    return await _reward(session, ref, settings=settings, now=now)


async def _reward(
    session: AsyncSession, ref: Referral, *, settings: Settings, now: dt.datetime
) -> set[uuid.UUID]:
    reason = await _self_referral(session, ref.referee_id, ref.referrer_id)
    if reason is None:
        done = await repo.rewarded_referrals_since(session, ref.referrer_id, now - YEAR)
        if done >= settings.rewards_referral_yearly_cap:
            reason = "yearly_cap"
    if reason is not None:
        ref.status = "refused"
        ref.refusal_reason = reason
        return set()
    expires = now + dt.timedelta(days=settings.rewards_points_expiry_days)
    for user_id, amount, side in (
        (ref.referrer_id, settings.rewards_referrer_points, "referrer"),
        (ref.referee_id, settings.rewards_referee_points, "referee"),
    ):
        await points.earn(
            session=session,
            user_id=user_id,
            points=amount,
            qualifying=True,
            source="referral",
            key=f"referral:{ref.referee_id}:{side}",
            expires_at=expires,
            now=now,
            source_ref=f"referral:{ref.referee_id}",
        )
    ref.status = "rewarded"
    ref.rewarded_at = now
    return {ref.referrer_id, ref.referee_id}


async def overview(
    *, session: AsyncSession, user_id: uuid.UUID, now: dt.datetime
) -> tuple[str, list[Referral], list[tuple[uuid.UUID, dt.datetime]], int]:
    """(code, referral rows, referees who signed up with the code, rewarded this year)."""
    user = await identity.get_user(session=session, user_id=user_id)
    code = user.referral_code if user is not None else ""
    rows = await repo.referrals_of(session, user_id)
    signed_up = await identity.referred_users(session=session, referrer_id=user_id)
    done = await repo.rewarded_referrals_since(session, user_id, now - YEAR)
    return code, rows, signed_up, done
