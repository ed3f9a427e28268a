"""Leaderboards: points earned (net of reversed earnings) per ISO week, calendar month (UTC)
and all time, in Redis sorted sets.

Each `rewards.earned` outbox event increments the sets of its period once (a per-week set of
applied lot ids makes the relay's at-least-once delivery count once). `rebuild` recomputes the
current periods from the ledger's entries and swaps them in atomically; the maintenance
schedule runs it, so the boards agree with the ledger even after Redis lost data.

Privacy: a board never shows another user's id. Each entry has a label: the user's display
name when they opted in (`PUT /settings {leaderboard_public: true}`), else a stable alias
("Player 3F7K2Q", a keyed hash of the id that nobody can link to an id without the server's
secret). Opted-in names live in the Redis hash `rewards:lb:names`, kept by the
`rewards.leaderboard_name` outbox event and rewritten from PostgreSQL by `rebuild`, so a
board is read in one Redis round trip.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import service as identity
from pull.ledger import service as ledger
from pull.rewards import read_cache
from pull.rewards import repository as repo
from pull.rewards.points import EARNED_KINDS

PREFIX = "rewards:lb"
NAMES = f"{PREFIX}:names"
APPLIED_TTL = 40 * 86_400

_APPLY = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('ZINCRBY', KEYS[2], ARGV[3], ARGV[2])
  redis.call('ZINCRBY', KEYS[3], ARGV[3], ARGV[2])
  redis.call('ZINCRBY', KEYS[4], ARGV[3], ARGV[2])
  redis.call('PUBLISH', ARGV[5], ARGV[6])
  return 1
end
return 0
"""


# One round trip: the top of a board, the opted-in names of those on it, the caller's score
# and how many are above it.
_READ = """
local top = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local ids = {}
for i = 1, #top, 2 do ids[#ids + 1] = top[i] end
local names = {}
if #ids > 0 then names = redis.call('HMGET', KEYS[2], unpack(ids)) end
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
local higher = false
if score then higher = redis.call('ZCOUNT', KEYS[1], '(' .. score, '+inf') end
return {top, names, score, higher, redis.call('HGET', KEYS[2], ARGV[2])}
"""


def alias(user_id: uuid.UUID, secret: str) -> str:
    """A stable public alias for a user who did not opt in to showing their name."""
    digest = hmac.new(
        secret.encode(), b"rewards-leaderboard-alias:" + user_id.bytes, hashlib.sha256
    ).digest()
    return "Player " + base64.b32encode(digest[:5]).decode()[:6]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class Row:
    user_id: uuid.UUID
    points: int
    name: str | None


@dataclass(frozen=True, slots=True)
class Board:
    rows: list[Row]
    me: tuple[int, int] | None
    my_name: str | None


async def read(redis: Redis, *, period: str, now: dt.datetime, limit: int, me: uuid.UUID) -> Board:
    """The top `limit` of a board with their opted-in names, and the caller's (rank, points)."""
    top, names, score, higher, my_name = await redis.eval(
        _READ, 2, redis_key(period, now), NAMES, str(limit), str(me)
    )
    rows = []
    for i in range(0, len(top), 2):
        points = int(float(_text(top[i + 1])))
        if points > 0:
            name = names[i // 2] if i // 2 < len(names) else None
            rows.append(Row(uuid.UUID(_text(top[i])), points, _text(name) if name else None))
    mine = None
    if score is not None and int(float(_text(score))) > 0:
        mine = (int(higher) + 1, int(float(_text(score))))
    return Board(rows, mine, _text(my_name) if my_name else None)


async def public_names(*, session: AsyncSession, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Display names of those among `user_ids` who opted in and have one."""
    public = await repo.public_profiles(session, user_ids)
    names = await identity.display_names(session=session, user_ids=sorted(public))
    return {u: n for u, n in names.items() if n}


async def refresh_name(*, session: AsyncSession, redis: Redis, user_id: uuid.UUID) -> None:
    """Put the user's current choice (and display name) on the boards."""
    found = (await public_names(session=session, user_ids=[user_id])).get(user_id)
    async with redis.pipeline(transaction=True) as pipe:
        if found:
            pipe.hset(NAMES, str(user_id), found)
        else:
            pipe.hdel(NAMES, str(user_id))
        pipe.publish(read_cache.CHANNEL, read_cache.BOARD)
        await pipe.execute()
    read_cache.boards_changed()


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
        _APPLY,
        len(keys),
        *keys,
        str(lot_id),
        user_id,
        str(points),
        str(APPLIED_TTL),
        read_cache.CHANNEL,
        read_cache.BOARD,
    )
    read_cache.boards_changed()
    return bool(done)


async def rebuild(*, session: AsyncSession, redis: Redis, now: dt.datetime) -> dict[str, int]:
    """Recompute the current week's, month's and all-time boards from the ledger, and the
    opted-in names from the profiles."""
    sizes = {}
    ranked: set[uuid.UUID] = set()
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
        ranked.update(sums)
    names = await public_names(session=session, user_ids=sorted(ranked))
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(f"{NAMES}:rebuild")
        if names:
            pipe.hset(f"{NAMES}:rebuild", mapping={str(u): n for u, n in names.items()})
            pipe.rename(f"{NAMES}:rebuild", NAMES)
        else:
            pipe.delete(NAMES)
        pipe.publish(read_cache.CHANNEL, read_cache.BOARD)  # the API processes' answers die
        await pipe.execute()
    read_cache.boards_changed()
    return sizes
