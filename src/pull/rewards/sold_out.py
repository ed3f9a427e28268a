"""Sold-out marks: after the last unit of an item, a burst of buyers is answered 409
OUT_OF_STOCK without database work, yet never while stock remains.

Each item has a stock generation in Redis (`rewards:stock:gen:<id>`). Every transaction that
raises an item's stock or changes the item (an admin stock or item change, a failed
redemption's units given back, a refund) marks it (`raised`), and after its commit the
generation moves (INCR); `kit.db.commit` returns only once it has, so the API call or activity
that gave stock back is answered after the move. A redemption reads the generation first
(`generation`: a GET sent after it asked, shared by the callers of that moment); if its
transaction then finds the item at 0 it marks the item sold out *at that generation*, in the
process's memory (`SoldOut.mark`); a later redemption is refused at once only if the
generation it read is still the marked one (`SoldOut.check`). So:

- never oversold: a mark only refuses; the conditional UPDATE still guards every sale;
- never refused while stock remains: a mark is made from a database read that came after the
  generation's read, and any stock given back since moved the generation before its caller
  was answered; a redemption that started before that answer is concurrent with it;
- Redis unreachable: no generation, no mark used or made (every redemption reads PostgreSQL);
  a move lost to Redis failing right after a commit, or a Redis that lost its keys: marks
  also die after MAX_AGE seconds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pull.kit import db
from pull.rewards.errors import OutOfStock

MAX_AGE = 5.0
MAX_MARKS = 10_000
_RAISED = "rewards_stock_raised"
_MOVING = "rewards_stock_moving"
_tasks: set[asyncio.Task[None]] = set()
# per Redis client (so per app): the item's next stock-generation GET not yet sent
_flights: weakref.WeakKeyDictionary[Redis, dict[uuid.UUID, asyncio.Future[bytes | None]]] = (
    weakref.WeakKeyDictionary()
)


def _key(item_id: uuid.UUID | str) -> str:
    return f"rewards:stock:gen:{item_id}"


async def generation(redis: Any, item_id: uuid.UUID) -> bytes | None:
    """The item's stock generation now (b"" if it never moved), None without Redis.

    Concurrent callers share one GET (a burst of 1,000 buyers makes a few, not 1,000, and
    does not drain the Redis pool), but only a GET sent after they called: a caller joins the
    next GET while it is still unsent, so what it gets is at least as new as its call."""
    if not isinstance(redis, Redis):
        return None
    flights = _flights.setdefault(redis, {})
    flight = flights.get(item_id)
    if flight is None:
        flight = asyncio.get_running_loop().create_future()
        flights[item_id] = flight
        task = asyncio.get_running_loop().create_task(_get(redis, item_id, flight, flights))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
    return await asyncio.shield(flight)


async def _get(
    redis: Redis,
    item_id: uuid.UUID,
    flight: asyncio.Future[bytes | None],
    flights: dict[uuid.UUID, asyncio.Future[bytes | None]],
) -> None:
    if flights.get(item_id) is flight:
        del flights[item_id]  # from here on, a new caller waits for the next GET
    value: bytes | None
    try:
        raw = await redis.get(_key(item_id))
        value = b"" if raw is None else raw.encode() if isinstance(raw, str) else bytes(raw)
    except (RedisError, OSError):
        value = None
    except BaseException:
        flight.set_result(None)
        raise
    flight.set_result(value)


class SoldOut:
    """One app's marks (on `app.state`, see `of`): item -> (generation, made at)."""

    def __init__(self) -> None:
        self._marks: dict[uuid.UUID, tuple[bytes, float]] = {}

    def check(self, item_id: uuid.UUID, gen: bytes | None) -> None:
        """Raise OUT_OF_STOCK if the item was seen at 0 under generation `gen`."""
        if gen is None:
            return
        mark = self._marks.get(item_id)
        if mark is None:
            return
        if mark[0] == gen and time.monotonic() < mark[1] + MAX_AGE:
            raise OutOfStock(details={"reward_id": str(item_id)})
        self._marks.pop(item_id, None)

    def mark(self, item_id: uuid.UUID, gen: bytes | None) -> None:
        """A read that came after `gen` was read found no stock left."""
        if gen is None:
            return
        if len(self._marks) >= MAX_MARKS:
            self._marks.clear()
        self._marks[item_id] = (gen, time.monotonic())

    def clear(self, item_id: uuid.UUID) -> None:
        self._marks.pop(item_id, None)


def of(state: Any) -> SoldOut:
    """The app's marks (one per app, on `app.state`: never process-global)."""
    found: SoldOut | None = getattr(state, "rewards_sold_out", None)
    if found is None:
        found = SoldOut()
        state.rewards_sold_out = found
    return found


def raised(session: AsyncSession | Session, item_ids: Iterable[uuid.UUID]) -> None:
    """This transaction gives these items stock back (or changes them)."""
    marked: set[str] = session.info.setdefault(_RAISED, set())
    marked.update(str(i) for i in item_ids)


async def _move(redis: Redis, items: set[str]) -> None:
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for i in sorted(items):
                pipe.incr(_key(i))
            await pipe.execute()
    except (RedisError, OSError):
        pass  # the marks die by age (MAX_AGE)


@event.listens_for(Session, "after_commit")
def _on_commit(session: Session) -> None:
    items: set[str] = session.info.pop(_RAISED, set())
    if not items:
        return
    redis = session.info.get("redis")
    if not isinstance(redis, Redis):
        return
    try:
        task = asyncio.get_running_loop().create_task(_move(redis, items))
    except RuntimeError:
        return
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    session.info[_MOVING] = task


@event.listens_for(Session, "after_rollback")
def _on_rollback(session: Session) -> None:
    session.info.pop(_RAISED, None)


async def _after_commit(session: AsyncSession) -> None:
    """`kit.db.commit` returns once the generations moved (see the docstring)."""
    task = session.info.pop(_MOVING, None)
    if isinstance(task, asyncio.Task):
        await task  # _move swallows Redis errors


db.register_after_commit(_after_commit)
