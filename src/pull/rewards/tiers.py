"""Tiers by qualifying points earned in a rolling 365 days, computed from the ledger.

A tier rises as soon as the points reach it (checked on each qualifying earning) and falls
only at a review, at most one step, at most once per review period (REWARDS_TIER_REVIEW_DAYS).
The benefit is real money behaviour: qualifying earnings are multiplied by the tier's
multiplier (REWARDS_TIER_MULTIPLIERS_BP).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.ledger import service as ledger
from pull.rewards import repository as repo
from pull.rewards.models import RewardProfile
from pull.rewards.points import QUALIFYING_KINDS

WINDOW = dt.timedelta(days=365)


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    threshold: int
    multiplier_bp: int


def _pairs(raw: str) -> list[tuple[str, int]]:
    out = []
    for part in raw.split(","):
        name, _, value = part.strip().partition(":")
        out.append((name.strip(), int(value)))
    return out


def tiers(settings: Settings) -> list[Tier]:
    """The tiers in ascending order of threshold (the first is the entry tier)."""
    mults = dict(_pairs(settings.rewards_tier_multipliers_bp))
    found = sorted(_pairs(settings.rewards_tiers), key=lambda p: p[1])
    return [Tier(name, threshold, mults.get(name, 10_000)) for name, threshold in found]


def tier_for(points: int, ladder: list[Tier]) -> Tier:
    current = ladder[0]
    for tier in ladder:
        if points >= tier.threshold:
            current = tier
    return current


def index_of(name: str, ladder: list[Tier]) -> int:
    for i, tier in enumerate(ladder):
        if tier.name == name:
            return i
    return 0


async def qualifying_points(*, session: AsyncSession, user_id: uuid.UUID, now: dt.datetime) -> int:
    """Qualifying points earned (net of reversals) since 365 days before `now`, from the
    ledger's entries (no upper bound: entries stamped by the database clock count at once)."""
    sums = await ledger.entry_sums(
        session=session,
        account_kind="points",
        currency="PTS",
        transfer_kinds=QUALIFYING_KINDS,
        start=now - WINDOW,
        owner_id=user_id,
    )
    return max(0, sums.get(user_id, 0))


async def profile(
    *, session: AsyncSession, user_id: uuid.UUID, settings: Settings, lock: bool = False
) -> RewardProfile:
    found = await repo.profile(session, user_id, lock=lock)
    if found is None:
        await repo.ensure_profile(session, user_id, tiers(settings)[0].name)
        found = await repo.profile(session, user_id, lock=lock)
        assert found is not None
    return found


async def multiplier_bp(*, session: AsyncSession, user_id: uuid.UUID, settings: Settings) -> int:
    found = await repo.profile(session, user_id)
    ladder = tiers(settings)
    if found is None:
        return ladder[0].multiplier_bp
    return ladder[index_of(found.tier, ladder)].multiplier_bp


async def upgrade(
    *, session: AsyncSession, user_id: uuid.UUID, settings: Settings, now: dt.datetime
) -> str:
    """Raise the tier if the user's points now reach a higher one (never lowers it)."""
    row = await profile(session=session, user_id=user_id, settings=settings, lock=True)
    ladder = tiers(settings)
    earned = tier_for(await qualifying_points(session=session, user_id=user_id, now=now), ladder)
    if index_of(earned.name, ladder) > index_of(row.tier, ladder):
        row.tier = earned.name
    return row.tier


def reviewed_tier(current: str, points: int, ladder: list[Tier]) -> str:
    """The tier after a review: the earned tier if higher, else at most one step down."""
    earned = index_of(tier_for(points, ladder).name, ladder)
    now_at = index_of(current, ladder)
    if earned >= now_at:
        return ladder[earned].name
    return ladder[now_at - 1].name


async def review_due(
    *, session: AsyncSession, settings: Settings, now: dt.datetime, limit: int = 200
) -> int:
    """Review the profiles whose last review is a period old; returns how many were reviewed.
    Each review stamps the profile, so a rerun (or a resumed run) skips it."""
    before = now - dt.timedelta(days=settings.rewards_tier_review_days)
    ladder = tiers(settings)
    rows = await repo.profiles_due_review(session, before, limit)
    for row in rows:
        points = await qualifying_points(session=session, user_id=row.user_id, now=now)
        row.tier = reviewed_tier(row.tier, points, ladder)
        row.tier_reviewed_at = now
    await repo.flush(session)
    return len(rows)


@dataclass(frozen=True, slots=True)
class TierStatus:
    tier: str
    multiplier_bp: int
    qualifying_points: int
    next_tier: str | None
    points_to_next_tier: int | None


def status_of(current: str | None, points: int, settings: Settings) -> TierStatus:
    ladder = tiers(settings)
    i = index_of(current or ladder[0].name, ladder)
    nxt = ladder[i + 1] if i + 1 < len(ladder) else None
    return TierStatus(
        tier=ladder[i].name,
        multiplier_bp=ladder[i].multiplier_bp,
        qualifying_points=points,
        next_tier=nxt.name if nxt else None,
        points_to_next_tier=max(0, nxt.threshold - points) if nxt else None,
    )


async def status(
    *, session: AsyncSession, user_id: uuid.UUID, settings: Settings, now: dt.datetime
) -> TierStatus:
    found = await repo.profile(session, user_id)
    points = await qualifying_points(session=session, user_id=user_id, now=now)
    return status_of(found.tier if found is not None else None, points, settings)
