"""Leaderboards: points earned (net of reversed earnings) per ISO week, calendar month (UTC)
and all time, in Redis sorted sets.

Each `rewards.earned` outbox event increments the sets of its period once (a per-week set of
applied lot ids makes the relay's at-least-once delivery count once). `rebuild` recomputes the
current periods from the ledger's entries and swaps them in atomically; the maintenance
schedule runs it, so the boards agree with the ledger even after Redis lost data.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from pull.ledger import service as ledger
from pull.rewards.points import EARNED_KINDS

PREFIX = "rewards:lb"
APPLIED_TTL = 40 * 86_400

_APPLY = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('ZINCRBY', KEYS[2], ARGV[3], ARGV[2])
  redis.call('ZINCRBY', KEYS[3], ARGV[3], ARGV[2])
  redis.call('ZINCRBY', KEYS[4], ARGV[3], ARGV[2])
  return 1
end
return 0
"""


def week_key(at: dt.datetime) -> str:
    year, week, _ = at.astimezone(dt.UTC).isocalendar()
    return f"{year}-W{week:02d}"


def month_key(at: dt.datetime) -> str:
    at = at.astimezone(dt.UTC)
    return f"{at.year}-{at.month:02d}"


def period_key(period: str, at: dt.datetime) -> str:
    if period == "weekly":
        return week_key(at)
    if period == "monthly":
        return month_key(at)
    return "all"


def redis_key(period: str, at: dt.datetime) -> str:
    if period == "weekly":
        return f"{PREFIX}:w:{week_key(at)}"
    if period == "monthly":
        return f"{PREFIX}:m:{month_key(at)}"
    return f"{PREFIX}:all"


def period_bounds(period: str, at: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
    at = at.astimezone(dt.UTC)
    if period == "weekly":
        start = dt.datetime.combine(
            at.date() - dt.timedelta(days=at.weekday()), dt.time(), tzinfo=dt.UTC
        )
        return start, start + dt.timedelta(days=7)
    if period == "monthly":
        start = dt.datetime(at.year, at.month, 1, tzinfo=dt.UTC)
        nxt = dt.datetime(at.year + (at.month == 12), at.month % 12 + 1, 1, tzinfo=dt.UTC)
        return start, nxt
    return None, None


async def apply_earned(
    redis: Redis, *, user_id: str, lot_id: int, points: int, at: dt.datetime
) -> bool:
    keys = [
        f"{PREFIX}:applied:{week_key(at)}",
        redis_key("all_time", at),
        redis_key("weekly", at),
        redis_key("monthly", at),
    ]
    done = await redis.eval(
        _APPLY, len(keys), *keys, str(lot_id), user_id, str(points), str(APPLIED_TTL)
    )
    return bool(done)


async def top(
    redis: Redis, *, period: str, now: dt.datetime, limit: int
) -> list[tuple[uuid.UUID, int]]:
    rows: list[Any] = await redis.zrevrange(redis_key(period, now), 0, limit - 1, withscores=True)
    out = []
    for member, score in rows:
        raw = member.decode() if isinstance(member, bytes) else str(member)
        if int(score) > 0:
            out.append((uuid.UUID(raw), int(score)))
    return out


async def rank_of(
    redis: Redis, *, period: str, now: dt.datetime, user_id: uuid.UUID
) -> tuple[int, int] | None:
    key = redis_key(period, now)
    score = await redis.zscore(key, str(user_id))
    if score is None or int(score) <= 0:
        return None
    higher = await redis.zcount(key, f"({int(score)}", "+inf")
    return int(higher) + 1, int(score)


async def rebuild(*, session: AsyncSession, redis: Redis, now: dt.datetime) -> dict[str, int]:
    """Recompute the current week's, month's and all-time boards from the ledger."""
    sizes = {}
    for period in ("weekly", "monthly", "all_time"):
        start, end = period_bounds(period, now)
        sums = await ledger.entry_sums(
            session=session,
            account_kind="points",
            currency="PTS",
            transfer_kinds=EARNED_KINDS,
            start=start,
            end=end,
        )
        key = redis_key(period, now)
        scratch = f"{key}:rebuild"
        members = {str(u): p for u, p in sums.items() if p != 0}
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(scratch)
            if members:
                pipe.zadd(scratch, members)
                pipe.rename(scratch, key)
            else:
                pipe.delete(key)
            await pipe.execute()
        sizes[period] = len(members)
    return sizes
