"""The per-request authentication check without a PostgreSQL read: a cache in Redis, shared
by every API process, that a revocation cannot slip past.

What is cached: the answer of the session check (`authenticate_access`) per session id, and
of the API-key lookup per key id, each stamped with the owner's *generation*
(`auth:gen:<user_id>`, a random start, then incremented). An entry is used only while its
generation is still the user's current one and no change of the user is in flight.

How a change takes effect everywhere at once (logout, logout everywhere, password change or
reset, session or key revocation, a status, role, email or 2FA change, a re-authentication):

1. Every change marks the user in its transaction: the repository's bulk updates call `mark`,
   and a flush listener marks changed `User`, `AuthSession` and `ApiKey` rows. Marking also
   writes an `identity.auth_changed` outbox event in the same transaction.
2. Before the commit (`pull.kit.db.commit`, used by every request and `session_scope`), one
   Redis round trip increments the user's generation and an in-flight counter
   (`auth:pend:<user_id>`, expiring). While it is non-zero, checks read PostgreSQL and cache
   nothing, so no process can cache what it read before the commit.
3. After the commit (or a rollback) the generation is incremented again and the in-flight
   counter decremented. Entries written before step 2 carry an old generation and are dead.

Every move of a generation is also published on `local_auth.CHANNEL` in the same MULTI, for
the in-process first level (local_auth), which serves most checks without Redis at all.

With Redis down the check reads PostgreSQL (never an entry it cannot validate). When the
committing process cannot reach Redis but others can, the outbox relay increments the
generation as soon as it delivers the event, and no entry lives longer than `ENTRY_TTL`
seconds: that is the one bounded window, and it needs a partial Redis outage.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript as Script
from redis.exceptions import RedisError
from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

from pull.identity.local_auth import CHANNEL
from pull.identity.models import ApiKey, AuthSession, User
from pull.identity.schemas import AuthUser
from pull.kit import db
from pull.kit.outbox import OutboxEvent

log = logging.getLogger("pull.identity.auth_cache")

TOPIC = "identity.auth_changed"
ENTRY_TTL = 10  # seconds; below the session touch interval so last_used_at stays fresh
PENDING_TTL = 60
GEN_TTL = 7 * 86400
BREAKER_SECONDS = 2.0

_CHANGED = "pull.auth.changed"  # session.info: user ids changed in this transaction
_EMITTED = "pull.auth.emitted"  # session.info: user ids whose outbox event is written
_PRECOMMITTED = "pull.auth.precommitted"  # session.info: user ids of step 2
_USER_FIELDS = ("email", "role", "status", "totp_enabled_at", "password_hash")
_SESSION_FIELDS = ("revoked_at", "expires_at", "authenticated_at", "user_id")
_KEY_FIELDS = ("revoked_at", "public_key_pem", "user_id")
_tasks: set[asyncio.Task[None]] = set()
_down_until = 0.0


def gen_key(user_id: uuid.UUID | str) -> str:
    return f"auth:{{{user_id}}}:gen"


def pend_key(user_id: uuid.UUID | str) -> str:
    return f"auth:{{{user_id}}}:pend"


def session_key(user_id: uuid.UUID, session_id: uuid.UUID) -> str:
    return f"auth:{{{user_id}}}:s:{session_id}"


def api_key_key(user_id: uuid.UUID, key_id: uuid.UUID) -> str:
    return f"auth:{{{user_id}}}:k:{key_id}"


# Whose key is it: immutable (a key never changes owner), so it may live in process memory.
_KEY_OWNERS: dict[uuid.UUID, uuid.UUID] = {}


def key_owner(key_id: uuid.UUID) -> uuid.UUID | None:
    return _KEY_OWNERS.get(key_id)


def remember_owner(key_id: uuid.UUID, user_id: uuid.UUID) -> None:
    if len(_KEY_OWNERS) > 100_000:
        _KEY_OWNERS.clear()
    _KEY_OWNERS[key_id] = user_id


# --- marking changes -------------------------------------------------------------------------


def mark(session: AsyncSession | Session, user_id: uuid.UUID) -> None:
    """This transaction changes what the check answers for `user_id`."""
    info = session.info
    info.setdefault(_CHANGED, set()).add(user_id)
    emitted: set[uuid.UUID] = info.setdefault(_EMITTED, set())
    if user_id not in emitted:
        emitted.add(user_id)
        session.add(OutboxEvent(topic=TOPIC, key=str(user_id), payload={"user_id": str(user_id)}))


def _changed(obj: Any, fields: Sequence[str]) -> bool:
    state = inspect(obj)
    return any(state.attrs[f].history.has_changes() for f in fields)


@event.listens_for(Session, "before_flush")
def _on_flush(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, User) and (obj in session.deleted or _changed(obj, _USER_FIELDS)):
            mark(session, obj.id)
        elif isinstance(obj, AuthSession | ApiKey) and (
            obj in session.deleted
            or _changed(obj, _SESSION_FIELDS if isinstance(obj, AuthSession) else _KEY_FIELDS)
        ):
            mark(session, obj.user_id)


def _redis_of(session: Session | AsyncSession) -> Redis | None:
    redis = session.info.get("redis")
    return redis if isinstance(redis, Redis) else None


async def _before_commit(session: AsyncSession) -> None:
    """Step 2: the generation moves and the change is in flight before anything commits."""
    ids = set(session.info.get(_CHANGED, ())) - set(session.info.get(_PRECOMMITTED, ()))
    redis = _redis_of(session)
    if not ids or redis is None:
        return
    try:
        async with redis.pipeline(transaction=True) as pipe:
            for uid in ids:
                pipe.incr(gen_key(uid))
                pipe.expire(gen_key(uid), GEN_TTL)
                pipe.incr(pend_key(uid))
                pipe.expire(pend_key(uid), PENDING_TTL)
                pipe.publish(CHANNEL, str(uid))  # every process's local entries (local_auth)
            await pipe.execute()
    except RedisError:
        log.warning("auth cache: could not mark %d user(s) before commit", len(ids))
        return
    session.info.setdefault(_PRECOMMITTED, set()).update(ids)


async def _after(redis: Redis, changed: set[uuid.UUID], pre: set[uuid.UUID]) -> None:
    try:
        async with redis.pipeline(transaction=True) as pipe:
            for uid in changed:
                pipe.incr(gen_key(uid))
                pipe.expire(gen_key(uid), GEN_TTL)
            for uid in pre:
                pipe.decr(pend_key(uid))
            for uid in changed | pre:
                pipe.publish(CHANNEL, str(uid))
            await pipe.execute()
    except RedisError:
        log.warning("auth cache: could not finish %d change(s) after commit", len(changed))


def _finish(session: Session, *, committed: bool) -> None:
    """Step 3, on the event loop: scheduled from SQLAlchemy's (synchronous) commit events."""
    changed: set[uuid.UUID] = session.info.pop(_CHANGED, set())
    pre: set[uuid.UUID] = session.info.pop(_PRECOMMITTED, set())
    session.info.pop(_EMITTED, None)
    redis = _redis_of(session)
    if redis is None or not (changed or pre):
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(_after(redis, changed if committed else set(), pre))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


@event.listens_for(Session, "after_commit")
def _on_commit(session: Session) -> None:
    _finish(session, committed=True)


@event.listens_for(Session, "after_rollback")
def _on_rollback(session: Session) -> None:
    _finish(session, committed=False)


db.register_before_commit(_before_commit)


async def bump(redis: Redis, user_id: uuid.UUID) -> None:
    """The outbox relay's handler of `identity.auth_changed` (for a commit whose process could
    not reach Redis): the user's entries die."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(gen_key(user_id))
        pipe.expire(gen_key(user_id), GEN_TTL)
        pipe.publish(CHANNEL, str(user_id))
        await pipe.execute()


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    """What Redis said about one session or key: the cached answer if it may be used, else the
    generation to stamp a fresh answer with (None: do not cache)."""

    value: dict[str, Any] | None
    gen: bytes | None


def _available() -> bool:
    return time.monotonic() >= _down_until


def _trip() -> None:
    global _down_until
    _down_until = time.monotonic() + BREAKER_SECONDS


# The entry, the user's generation (started at a random value when missing: an entry stamped
# with an expired generation can never match again) and the in-flight counter, in one round
# trip. The three keys share the user's hash tag, so this also runs on Redis Cluster.
_LOOKUP = """
local e = redis.call('GET', KEYS[1])
local g = redis.call('GET', KEYS[2])
if not g then
  g = ARGV[1]
  redis.call('SET', KEYS[2], g, 'EX', ARGV[2])
end
return {e or false, g, redis.call('GET', KEYS[3]) or false}
"""


_lookup_script = Script(None, _LOOKUP.encode())  # type: ignore[arg-type]  # run on the given client


async def lookup(redis: Redis, key: str, user_id: uuid.UUID) -> Lookup:
    """The cached answer for `key` if it may be used, else the generation to stamp a fresh
    answer with (read before the database is, as it must be)."""
    if not _available():
        return Lookup(None, None)
    try:
        raw, gen, pend = await _lookup_script(
            keys=[key, gen_key(user_id), pend_key(user_id)],
            args=[secrets.randbelow(1 << 62), GEN_TTL],
            client=redis,
        )
    except RedisError:
        _trip()
        return Lookup(None, None)
    if pend and int(pend) > 0:
        return Lookup(None, None)
    if raw:
        try:
            entry = json.loads(raw)
        except ValueError:
            entry = None
        if isinstance(entry, dict) and str(entry.get("gen")) == gen.decode():
            return Lookup(entry, gen)
    return Lookup(None, gen)


async def store(redis: Redis, key: str, value: dict[str, Any], gen: bytes, ttl: float) -> None:
    if ttl < 1 or not _available():
        return
    try:
        await redis.set(
            key, json.dumps({**value, "gen": gen.decode()}), ex=int(min(ttl, ENTRY_TTL))
        )
    except RedisError:
        _trip()


def user_value(user: AuthUser, until: dt.datetime) -> dict[str, Any]:
    return {
        "user_id": str(user.id),
        "email": user.email,
        "role": user.role,
        "status": user.status,
        "totp": user.totp_enabled,
        "auth_at": user.authenticated_at.isoformat() if user.authenticated_at else None,
        "until": until.timestamp(),
    }


def user_from(value: dict[str, Any], session_id: uuid.UUID | None) -> AuthUser | None:
    """The cached caller, or None when the session has expired since it was cached."""
    if value["until"] <= time.time():
        return None
    auth_at = value.get("auth_at")
    return AuthUser(
        id=uuid.UUID(value["user_id"]),
        email=value["email"],
        role=value["role"],
        status=value["status"],
        session_id=session_id,
        totp_enabled=bool(value["totp"]),
        authenticated_at=dt.datetime.fromisoformat(auth_at) if auth_at else None,
    )
