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

Requests that miss one answer together (a fresh market, or an answer that just aged out under
load) wait for one load of it instead of each reading PostgreSQL; only requests under the same
token share it, so one that arrives after a message reads for itself. Routes read through
`serve`, which opens a session only to load: a hit costs no session and no dependency for it.
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
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from pull.kit import db, invalidation
from pull.kit.invalidation import Invalidations
from pull.kit.single_flight import load_once

T = TypeVar("T")

MAX_AGE = 1.0  # seconds
MAX_ENTRIES = 20_000
CHANNEL = "exchange:changed"
_TOUCHED = "pull.exchange.touched"
_BUMPING = "pull.exchange.bumping"
Key = tuple[str, str, Any]  # (kind, ticker, arg)
_entries: dict[Key, tuple[Any, float, Any]] = {}
_loading: dict[Key, tuple[Any, asyncio.Future[Any]]] = {}
_tasks: set[asyncio.Task[None]] = set()


class _Versions:
    """One app's local version per ticker, moved by the `exchange:changed` messages."""

    def __init__(self) -> None:
        self.by_ticker: dict[str, int] = {}
        self.generation = 0  # part of every token: counters that restart never match again

    def changed(self, data: bytes) -> None:
        ticker = data.decode(errors="replace")
        self.by_ticker[ticker] = self.by_ticker.get(ticker, 0) + 1
        if len(self.by_ticker) > MAX_ENTRIES:
            self.cleared()
            _entries.clear()

    def cleared(self) -> None:
        self.by_ticker.clear()
        self.generation += 1


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
    for t in tickers:  # this process's own answers (and loads begun before) die at once
        for key in [k for k in _entries if k[1] == t]:
            _entries.pop(key, None)
        for key in [k for k in _loading if k[1] == t]:
            _loading.pop(key, None)
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
    return await _lookup(redis, (kind, ticker, arg), load)


async def serve(
    request: Request,
    kind: str,
    ticker: str,
    arg: Any,
    load: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """A route's cached read without a session per request: a session of its own is opened
    only to load a missing answer (read-only, closed without a commit)."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker

    async def loaded() -> T:
        async with maker() as session:
            return await load(session)

    redis = getattr(request.app.state, "redis", None)
    if not isinstance(redis, Redis):
        return await loaded()
    return await _lookup(redis, (kind, ticker, arg), loaded)


async def _lookup(redis: Redis, key: Key, load: Callable[[], Awaitable[T]]) -> T:
    inv = invalidation.of(redis)
    versions = _local.get(inv) if inv is not None else None
    if inv is not None and versions is not None and inv.live():
        token: Any = (
            id(versions),
            inv.epoch,
            versions.generation,
            versions.by_ticker.get(key[1], 0),
        )
        return await _cached(key, token, load)
    try:
        raw = await redis.get(version_key(key[1]))
        if raw is None:  # first read since Redis started: give the market a version of its own
            fresh = _new_version()
            won = await redis.set(version_key(key[1]), fresh, nx=True)
            raw = fresh if won else await redis.get(version_key(key[1]))
    except RedisError:
        return await load()
    if not isinstance(raw, bytes):
        return await load()
    return await _cached(key, raw, load)


async def _cached(key: Key, token: Any, load: Callable[[], Awaitable[T]]) -> T:
    """The answer kept under `token` (taken before anything is read), else `load()`'s: one
    load per key and token at a time, the requests that miss meanwhile wait for its answer
    (a herd of misses when an answer ages out would each read PostgreSQL). An answer being
    loaded under an older token is not handed to a request that came after a message."""
    now = time.monotonic()
    hit = _entries.get(key)
    if hit is not None and hit[0] == token and now - hit[1] < MAX_AGE:
        value: T = hit[2]
        return value
    value, mine = await load_once(_loading, key, token, load)
    if not mine:
        return value
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[key] = (token, now, value)  # a message meanwhile moved the token: dead at once
    return value


def json_bytes(body: bytes, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer already serialized (a cached one): no response-model pass per request."""
    return Response(content=body, media_type="application/json", headers=headers)
