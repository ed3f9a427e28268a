"""Daily streak: one claim per local calendar day of the user's time zone.

A missed day breaks the streak unless a freeze covers it (one freeze per missed day); a freeze
is earned every REWARDS_STREAK_FREEZE_EVERY consecutive days, at most
REWARDS_STREAK_MAX_FREEZES held. A second claim on the same local day is 409 ALREADY_CLAIMED.
The time zone can be changed at most once in TIMEZONE_CHANGE_DAYS, and local dates only move
forward, so a change never yields a second claim for a day already claimed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.kit.outbox import emit
from pull.rewards import points, tiers
from pull.rewards.errors import AlreadyClaimed, InvalidState, InvalidTimezone
from pull.rewards.models import RewardProfile

TIMEZONE_CHANGE_DAYS = 30


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidTimezone(details={"timezone": name}) from exc


@dataclass(frozen=True, slots=True)
class Claim:
    streak: int
    best: int
    freezes: int
    freezes_used: int
    local_date: dt.date
    timezone: str
    points: int


def advance(row: RewardProfile, today: dt.date, *, every: int, max_freezes: int) -> tuple[int, int]:
    """Apply a claim for `today` to the profile; (freezes used, new streak)."""
    used = 0
    last = row.streak_last_day
    if last is not None and today <= last:
        raise AlreadyClaimed(details={"local_date": today.isoformat()})
    if last is None:
        row.streak = 1
    else:
        missed = (today - last).days - 1
        if missed == 0:
            row.streak += 1
        elif missed <= row.freezes:
            row.freezes -= missed
            used = missed
            row.streak += 1
        else:
            row.streak = 1
    if row.streak % every == 0 and row.freezes < max_freezes:
        row.freezes += 1
    row.streak_best = max(row.streak_best, row.streak)
    row.streak_last_day = today
    return used, row.streak


async def claim(
    *, session: AsyncSession, user_id: uuid.UUID, settings: Settings, now: dt.datetime
) -> Claim:
    row = await tiers.profile(session=session, user_id=user_id, settings=settings, lock=True)
    today = now.astimezone(zone(row.timezone)).date()
    used, _ = advance(
        row,
        today,
        every=settings.rewards_streak_freeze_every,
        max_freezes=settings.rewards_streak_max_freezes,
    )
    earned = await points.earn(
        session=session,
        user_id=user_id,
        points=settings.rewards_streak_points,
        qualifying=False,
        source="daily_streak",
        key=f"streak:{user_id}:{today.isoformat()}",
        expires_at=now + dt.timedelta(days=settings.rewards_points_expiry_days),
        now=now,
        source_ref=f"streak:{today.isoformat()}",
    )
    return Claim(
        streak=row.streak,
        best=row.streak_best,
        freezes=row.freezes,
        freezes_used=used,
        local_date=today,
        timezone=row.timezone,
        points=earned.points if earned else 0,
    )


async def set_timezone(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    timezone: str,
    settings: Settings,
    now: dt.datetime,
) -> RewardProfile:
    zone(timezone)
    row = await tiers.profile(session=session, user_id=user_id, settings=settings, lock=True)
    if timezone == row.timezone:
        return row
    if row.timezone_changed_at is not None and now - row.timezone_changed_at < dt.timedelta(
        days=TIMEZONE_CHANGE_DAYS
    ):
        raise InvalidState(
            f"The time zone can change once every {TIMEZONE_CHANGE_DAYS} days",
            code="TIMEZONE_CHANGE_TOO_SOON",
        )
    row.timezone = timezone
    row.timezone_changed_at = now
    return row


async def update_settings(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    timezone: str | None,
    leaderboard_public: bool | None,
    settings: Settings,
    now: dt.datetime,
) -> RewardProfile:
    """Change what was given. A change of leaderboard visibility reaches the boards through
    the outbox (`rewards.leaderboard_name`), so only a committed choice is shown."""
    if timezone is not None:
        row = await set_timezone(
            session=session, user_id=user_id, timezone=timezone, settings=settings, now=now
        )
    else:
        row = await tiers.profile(session=session, user_id=user_id, settings=settings, lock=True)
    if leaderboard_public is not None and leaderboard_public != row.leaderboard_public:
        row.leaderboard_public = leaderboard_public
        emit(
            session,
            topic="rewards.leaderboard_name",
            key=str(user_id),
            payload={"user_id": str(user_id)},
        )
    return row


async def record_device(
    *, session: AsyncSession, user_id: uuid.UUID, fingerprint: str, settings: Settings
) -> None:
    """Remember a device fingerprint the user's app sent (self-referral checks)."""
    fingerprint = fingerprint.strip()[:128]
    if not fingerprint:
        return
    row = await tiers.profile(session=session, user_id=user_id, settings=settings, lock=True)
    if fingerprint not in row.device_fingerprints:
        row.device_fingerprints = [*row.device_fingerprints, fingerprint][-20:]
