"""Redis Streams behind the live feeds: one stream of market events, one of user events.

Writers are the book commands (right after their commit, for latency) and the outbox relay
(the durable record of the same events, for the case where a process dies between its commit
and its publish). Both go through `xadd_once`: a short-lived claim key per event id makes the
second writer a no-op, so an event is appended once. Readers are the API processes' realtime
hubs; each keeps the id of the last entry it read and resumes from it after a reconnect.

Entries: `rt:market` {e: JSON event with `ticker`}, `rt:user` {u: user id, e: JSON event}.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

MARKET_STREAM = "rt:market"
USER_STREAM = "rt:user"
# Entries kept per stream (approximate trim): a reader more than this far behind re-snapshots.
MAXLEN = 100_000
# How long the claim of an event id lives: longer than the relay takes to deliver it.
CLAIM_SECONDS = 600

_XADD_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""

# `_XADD_ONCE` for many events of one stream in one call: KEYS = the events' claim keys, then
# the stream; ARGV = claim seconds, MAXLEN, then per event its field count and fields.
_XADD_ONCE_MANY = """
local stream = KEYS[#KEYS]
local at = 3
for i = 1, #KEYS - 1 do
  local n = tonumber(ARGV[at])
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, at + 1, at + n))
  end
  at = at + n + 1
end
return 1
"""
# Events per `_XADD_ONCE_MANY` call (Lua's unpack and the call's argument list stay small).
_MANY_CHUNK = 500

_publisher: Redis | None = None


def set_publisher(redis: Redis | None) -> None:
    """The process's Redis for post-commit publishes (the API sets it at start-up)."""
    global _publisher
    _publisher = redis


def clear_publisher(redis: Redis) -> None:
    """At an app's shutdown: forget its Redis, unless another app has set its own since."""
    global _publisher
    if _publisher is redis:
        _publisher = None


def publisher() -> Redis | None:
    return _publisher


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def decode(raw: bytes) -> dict[str, Any]:
    value = orjson.loads(raw)
    assert isinstance(value, dict)
    return value


def _args(fields: dict[str, bytes | str]) -> list[bytes | str | int]:
    args: list[bytes | str | int] = [CLAIM_SECONDS, MAXLEN]
    for name, value in fields.items():
        args.extend((name, value))
    return args


async def xadd_once(redis: Redis, stream: str, eid: str, fields: dict[str, bytes | str]) -> bool:
    """Append `fields` to `stream` unless event `eid` was appended already; True if appended."""
    added = await redis.eval(_XADD_ONCE, 2, f"rt:claim:{eid}", stream, *_args(fields))
    return bool(added)


async def publish_users(redis: Redis, events: list[tuple[str, dict[str, Any]]]) -> None:
    """(user id, event) pairs on the user stream, each appended once (as `publish_user`), in
    one round trip: one script call per _MANY_CHUNK events, not a command each."""
    pipe = redis.pipeline(transaction=False)
    for i in range(0, len(events), _MANY_CHUNK):
        chunk = events[i : i + _MANY_CHUNK]
        keys = [f"rt:claim:{event['eid']}" for _, event in chunk]
        args: list[bytes | str | int] = [CLAIM_SECONDS, MAXLEN]
        for user_id, event in chunk:
            args.extend((4, "u", user_id, "e", encode(event)))
        pipe.eval(_XADD_ONCE_MANY, len(keys) + 1, *keys, USER_STREAM, *args)
    await pipe.execute()


async def publish_market(redis: Redis, event: dict[str, Any]) -> bool:
    return await xadd_once(redis, MARKET_STREAM, str(event["eid"]), {"e": encode(event)})


async def publish_user(redis: Redis, user_id: str, event: dict[str, Any]) -> bool:
    return await xadd_once(
        redis, USER_STREAM, str(event["eid"]), {"u": user_id, "e": encode(event)}
    )


async def publish_many(
    redis: Redis,
    *,
    market: list[dict[str, Any]],
    user: list[tuple[str, dict[str, Any]]],
) -> None:
    """Several events in one round trip (a book command's book and order events)."""
    pipe = redis.pipeline(transaction=False)
    for event in market:
        fields: dict[str, bytes | str] = {"e": encode(event)}
        pipe.eval(_XADD_ONCE, 2, f"rt:claim:{event['eid']}", MARKET_STREAM, *_args(fields))
    for user_id, event in user:
        fields = {"u": user_id, "e": encode(event)}
        pipe.eval(_XADD_ONCE, 2, f"rt:claim:{event['eid']}", USER_STREAM, *_args(fields))
    await pipe.execute()
