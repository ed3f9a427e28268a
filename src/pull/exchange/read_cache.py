"""Public market reads (a market, its order book) served from process memory, checked against
the market's commit version in Redis: one Redis GET instead of PostgreSQL reads per request.

Every book change locks its market row first (`book_repository.lock_market`, also used by the
lifecycle and settlement paths through it or `touch`), which records the ticker in the session;
after that transaction commits, the market's version `exchange:{<ticker>}:v` is replaced by a
fresh random token. A reader takes the version before it reads the database and keeps its
answer under that version, so an answer read before a commit is dead once the new version
lands. A counter would not do: a Redis that restarts empty (or a test that flushes it) counts
1, 2, 3 again and revives answers cached under those numbers. What the version cannot see (a
Redis outage at the bump, the rolling 24-hour volume) is bounded by `MAX_AGE`: no answer is
older than that. With Redis down the reads go to PostgreSQL.

Without the Redis GET: every version move is also published on `exchange:changed` (the
ticker), and an app that runs `pull.kit.invalidation` (the API) keeps a local counter per
ticker moved by those messages, applied in the I/O callback before any later request is
handled. While that subscription is live, an answer is checked against the local counter (no
round trip at all); when it is not (lost, erring or silent past its lease) the reads fall back
to the Redis GET above, and a resubscription starts a new epoch, so nothing cached across the
gap is used.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from starlette.responses import Response

from pull.kit import db, invalidation
from pull.kit.invalidation import Invalidations

T = TypeVar("T")

MAX_AGE = 1.0  # seconds
MAX_ENTRIES = 20_000
CHANNEL = "exchange:changed"
_TOUCHED = "pull.exchange.touched"
_BUMPING = "pull.exchange.bumping"
_entries: dict[tuple[str, str, Any], tuple[Any, float, Any]] = {}
_tasks: set[asyncio.Task[None]] = set()


class _Versions:
    """One app's local version per ticker, moved by the `exchange:changed` messages."""

    def __init__(self) -> None:
        self.by_ticker: dict[str, int] = {}

    def changed(self, data: bytes) -> None:
        ticker = data.decode(errors="replace")
        self.by_ticker[ticker] = self.by_ticker.get(ticker, 0) + 1
        if len(self.by_ticker) > MAX_ENTRIES:
            self.by_ticker.clear()
            _entries.clear()

    def cleared(self) -> None:
        self.by_ticker.clear()


_local: weakref.WeakKeyDictionary[Invalidations, _Versions] = weakref.WeakKeyDictionary()


def install(invalidations: Invalidations) -> None:
    """Check this app's answers against local versions while `invalidations` is live."""
    versions = _Versions()
    invalidations.handle(CHANNEL, versions.changed)
    invalidations.on_dead(versions.cleared)
    _local[invalidations] = versions


def version_key(ticker: str) -> str:
    return f"exchange:{{{ticker}}}:v"


def touch(session: AsyncSession | Session, ticker: str) -> None:
    """This transaction changes `ticker`'s market data."""
    session.info.setdefault(_TOUCHED, set()).add(ticker)


def _new_version() -> bytes:
    return secrets.token_hex(8).encode()


async def _bump(redis: Redis, tickers: set[str]) -> None:
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for t in tickers:
                pipe.set(version_key(t), _new_version())
                pipe.publish(CHANNEL, t)  # the processes' local versions (kit.invalidation)
            await pipe.execute()
    except RedisError:
        return  # answers die by age (MAX_AGE)
    inv = invalidation.of(redis)
    if inv is not None:
        await inv.fence()  # published is delivered: in every API process's socket


def touched(session: AsyncSession) -> set[str]:
    """The tickers this transaction changes (read before its commit)."""
    return set(session.info.get(_TOUCHED, ()))


async def committed(session: AsyncSession, tickers: set[str]) -> None:
    """After a book command's commit, before its answer: the new version is visible to every
    process by the time the caller hears back (the commit listener's bump, awaited)."""
    task = session.info.pop(_BUMPING, None)
    if isinstance(task, asyncio.Task):
        await task  # _bump swallows Redis errors
        return
    redis = session.info.get("redis")
    if tickers and isinstance(redis, Redis):
        await _bump(redis, tickers)


@event.listens_for(Session, "after_commit")
def _on_commit(session: Session) -> None:
    tickers: set[str] = session.info.pop(_TOUCHED, set())
    redis = session.info.get("redis")
    if not tickers or not isinstance(redis, Redis):
        return
    for t in tickers:  # this process's own answers die at once
        for key in [k for k in _entries if k[1] == t]:
            _entries.pop(key, None)
    try:
        task = asyncio.get_running_loop().create_task(_bump(redis, tickers))
    except RuntimeError:
        return
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    session.info[_BUMPING] = task


async def _after_commit(session: AsyncSession) -> None:
    """A unit of work that ends through `kit.db.commit` returns only once the new versions
    are published: a caller that reads next (a settlement activity's workflow, a test that
    asks another process) never sees an answer cached before its own commit."""
    await committed(session, set())


db.register_after_commit(_after_commit)


@event.listens_for(Session, "after_rollback")
def _on_rollback(session: Session) -> None:
    session.info.pop(_TOUCHED, None)


async def read(
    session: AsyncSession, kind: str, ticker: str, arg: Any, load: Callable[[], Awaitable[T]]
) -> T:
    """`load()`'s answer for (kind, ticker, arg), from memory while the market's version is
    unchanged and the answer younger than MAX_AGE."""
    redis = session.info.get("redis")
    if (
        not isinstance(redis, Redis)
        or _TOUCHED in session.info
        or session.new
        or session.dirty
        or session.deleted
    ):
        return await load()  # no Redis, or inside a unit of work that changed something
    inv = invalidation.of(redis)
    versions = _local.get(inv) if inv is not None else None
    if inv is not None and versions is not None and inv.live():
        return await _read_local(inv, versions, (kind, ticker, arg), load)
    try:
        raw = await redis.get(version_key(ticker))
        if raw is None:  # first read since Redis started: give the market a version of its own
            fresh = _new_version()
            won = await redis.set(version_key(ticker), fresh, nx=True)
            raw = fresh if won else await redis.get(version_key(ticker))
    except RedisError:
        return await load()
    if not isinstance(raw, bytes):
        return await load()
    version = raw
    key = (kind, ticker, arg)
    now = time.monotonic()
    hit = _entries.get(key)
    if hit is not None and hit[0] == version and now - hit[1] < MAX_AGE:
        value: T = hit[2]
        return value
    value = await load()
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[key] = (version, now, value)
    return value


async def _read_local(
    inv: Invalidations,
    versions: _Versions,
    key: tuple[str, str, Any],
    load: Callable[[], Awaitable[T]],
) -> T:
    token = (id(versions), inv.epoch, versions.by_ticker.get(key[1], 0))
    now = time.monotonic()
    hit = _entries.get(key)
    if hit is not None and hit[0] == token and now - hit[1] < MAX_AGE:
        value: T = hit[2]
        return value
    value = await load()  # kept under the token taken before: a message meanwhile kills it
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[key] = (token, now, value)
    return value


def json_bytes(body: bytes, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer already serialized (a cached one): no response-model pass per request."""
    return Response(content=body, media_type="application/json", headers=headers)
