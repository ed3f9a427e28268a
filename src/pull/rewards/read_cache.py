"""`GET /balance` and `GET /leaderboard` answered from the API process's memory, serialized,
while nothing they show has changed: no PostgreSQL (balance) or Redis (leaderboard) round trip
per request. The mechanism is `pull.kit.invalidation`'s, as in exchange.read_cache and
identity.local_auth: messages on the `rewards:changed` channel, applied in the event loop's
I/O callback before any later request is handled, and a lease.

- Balance. Every change of what a balance shows locks or writes the user's rows first, and
  the repository functions that do so (`repository`, `repository_batch`: lots, spendable lots,
  a redemption locked, a profile locked or created) record the user in the session (`touch`).
  When that transaction commits, this process drops the user's answers at once (the
  SQLAlchemy after-commit event) and publishes the user's id; every API process's local
  version of the user moves on that message. A unit of work that ends through
  `kit.db.commit` (requests, activities, `session_scope`) returns only after the message is
  delivered (published, then `Invalidations.fence`: it is in every subscribed process's
  socket), so whoever hears back from it never reads an older answer on any process.
- Leaderboard. The boards' Lua scripts (`leaderboard`) publish `BOARD` in the same script
  that changes a sorted set, and the rebuild after its swap; every board answer dies.

An answer is kept under the token taken before it was read (the epoch and the local version):
a message meanwhile means it is not kept. It is used only while the subscription is live (a
lost or silent subscription drops everything, and the reads go to PostgreSQL / Redis), and
for at most MAX_AGE seconds (BOARD_MAX_AGE for boards), and never past the first expiry date
it shows: what no message announces (a commit made through a session without Redis, such as a
CLI command; a qualifying earning leaving the rolling 365-day tier window) is at most that old.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pull.kit import db, invalidation
from pull.kit.invalidation import Invalidations
from pull.kit.single_flight import Loading, load_once

CHANNEL = "rewards:changed"
BOARD = b"*board"
MAX_AGE = 1.0  # seconds
BOARD_MAX_AGE = 1.0
MAX_ENTRIES = 50_000
_TOUCHED = "pull.rewards.touched"
_PUBLISHING = "pull.rewards.publishing"
_tasks: set[asyncio.Task[None]] = set()

Entry = tuple[tuple[int, int, int], float, bytes]


class _Local:
    """One app's versions (per user, and the boards') and its cached answers."""

    def __init__(self, inv: Invalidations) -> None:
        self.inv = inv
        self.versions: dict[bytes, int] = {}
        self.board = 0
        self.balances: dict[bytes, Entry] = {}
        self.boards: dict[tuple[str, int, bytes], Entry] = {}
        # one read per key at a time: the requests that miss meanwhile wait for its answer
        self.loading: Loading = {}

    def message(self, data: bytes) -> None:
        if data == BOARD:
            self.board += 1
            self.boards.clear()
            return
        self.versions[data] = self.versions.get(data, 0) + 1
        self.balances.pop(data, None)
        if len(self.versions) > MAX_ENTRIES:
            self.versions.clear()  # a new epoch keeps tokens taken before from matching
            self.inv.dead()

    def cleared(self) -> None:
        self.versions.clear()
        self.balances.clear()
        self.boards.clear()


_apps: weakref.WeakKeyDictionary[Invalidations, _Local] = weakref.WeakKeyDictionary()
# every app's caches in this process: a local commit drops its users' answers in all of them
_all: weakref.WeakSet[_Local] = weakref.WeakSet()


def install(invalidations: Invalidations) -> None:
    """Serve this app's balances and boards from memory while `invalidations` is live."""
    local = _Local(invalidations)
    invalidations.handle(CHANNEL, local.message)
    invalidations.on_dead(local.cleared)
    _apps[invalidations] = local
    _all.add(local)


def _of(redis: Any) -> _Local | None:
    inv = invalidation.of(redis)
    local = _apps.get(inv) if inv is not None else None
    return local if local is not None and local.inv.live() else None


def touch(session: AsyncSession | Session, user_ids: Iterable[uuid.UUID | str]) -> None:
    """This transaction changes (or may change) these users' balances."""
    touched: set[bytes] = session.info.setdefault(_TOUCHED, set())
    touched.update(str(u).encode() for u in user_ids)


def boards_changed() -> None:
    """A board changed through this process: its own board answers die at once (the other
    processes' on the message the change's script published)."""
    for local in list(_all):
        local.message(BOARD)


async def _publish(redis: Redis, users: set[bytes]) -> None:
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for u in users:
                pipe.publish(CHANNEL, u)
            await pipe.execute()
    except RedisError:
        return  # the answers die by age (MAX_AGE)
    inv = invalidation.of(redis)
    if inv is not None:
        await inv.fence()  # published is delivered: in every API process's socket


@event.listens_for(Session, "after_commit")
def _on_commit(session: Session) -> None:
    users: set[bytes] = session.info.pop(_TOUCHED, set())
    if not users:
        return
    for local in list(_all):  # this process's own answers die at once
        for u in users:
            local.message(u)
    redis = session.info.get("redis")
    if not isinstance(redis, Redis):
        return
    try:
        task = asyncio.get_running_loop().create_task(_publish(redis, users))
    except RuntimeError:
        return
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    session.info[_PUBLISHING] = task


@event.listens_for(Session, "after_rollback")
def _on_rollback(session: Session) -> None:
    session.info.pop(_TOUCHED, None)


async def _after_commit(session: AsyncSession) -> None:
    """`kit.db.commit` returns once the users' messages are published (see the docstring)."""
    task = session.info.pop(_PUBLISHING, None)
    if isinstance(task, asyncio.Task):
        await task  # _publish swallows Redis errors


db.register_after_commit(_after_commit)


def _fresh(hit: Entry | None, token: tuple[int, int, int], now: float) -> bytes | None:
    if hit is not None and hit[0] == token and now < hit[1]:
        return hit[2]
    return None


async def _single(
    local: _Local,
    key: Any,
    token: tuple[int, int, int],
    load: Callable[[], Awaitable[bytes]],
) -> tuple[bytes, bool]:
    """`load()` once for concurrent misses of one key under one token (kit.single_flight);
    (answer, whether this call read it: only the reader keeps it)."""
    return await load_once(local.loading, key, token, load)


async def balance(
    redis: Any,
    user_id: uuid.UUID,
    load: Callable[[], Awaitable[tuple[bytes, float | None]]],
) -> bytes:
    """The user's serialized balance; `load()` gives it and the Unix time of the first expiry
    it shows (None: none soon), past which it must not be served."""
    local = _of(redis)
    if local is None:
        return (await load())[0]
    key = str(user_id).encode()
    token = (id(local), local.inv.epoch, local.versions.get(key, 0))
    now = time.monotonic()
    found = _fresh(local.balances.get(key), token, now)
    if found is not None:
        return found
    first_expiry: float | None = None

    async def read() -> bytes:
        nonlocal first_expiry
        body, first_expiry = await load()
        return body

    body, mine = await _single(local, ("balance", key), token, read)
    if not mine:
        return body
    if token != (id(local), local.inv.epoch, local.versions.get(key, 0)):
        return body  # a message came in while it was read: not kept
    until = now + MAX_AGE
    if first_expiry is not None:
        until = min(until, now + (first_expiry - time.time()))
    if len(local.balances) >= MAX_ENTRIES:
        local.balances.clear()
    local.balances[key] = (token, until, body)
    return body


async def board(
    redis: Any, key: tuple[str, int, bytes], load: Callable[[], Awaitable[bytes]]
) -> bytes:
    """A serialized board answer for (board key, limit, caller)."""
    local = _of(redis)
    if local is None:
        return await load()
    token = (id(local), local.inv.epoch, local.board)
    now = time.monotonic()
    found = _fresh(local.boards.get(key), token, now)
    if found is not None:
        return found
    body, mine = await _single(local, ("board", key), token, load)
    if mine and token == (id(local), local.inv.epoch, local.board):
        if len(local.boards) >= MAX_ENTRIES:
            local.boards.clear()
        local.boards[key] = (token, now + BOARD_MAX_AGE, body)
    return body
