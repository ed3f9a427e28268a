"""Group commit: work for one key that arrives while that key's transaction is in flight
waits in the process and goes together into the next transaction.

A `GroupCommit` keeps a queue per key (a market, an asset) and at most one drain task per key
while something waits. The drain task takes up to `max_batch` items in arrival order and hands
them to `run(key, items)`, which must do them in one transaction and return one outcome per
item, in order: a value, or the exception that item's caller gets. `submit` returns (or
raises) an item's outcome only once `run` returned, so a caller that hears back after a commit
hears about a committed item. When `run` itself raises, every item of the batch gets that
exception (nothing of that batch committed).

A caller that goes away (its task canceled) does not cancel the batch: its item is still done
with the others, and nobody reads the outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
I = TypeVar("I")  # noqa: E741 - an item
R = TypeVar("R")

Run = Callable[[K, Sequence[I]], Awaitable[Sequence[R | BaseException]]]


class GroupCommit(Generic[K, I, R]):
    def __init__(self, run: Run[K, I, R], *, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self._max = max_batch
        self._waiting: dict[K, list[tuple[I, asyncio.Future[R]]]] = {}
        self._tasks: dict[K, asyncio.Task[None]] = {}
        self.batches = 0  # how many `run` calls so far, and how many items they carried
        self.items = 0

    async def submit(self, key: K, item: I) -> R:
        """Queue `item` for `key`'s next transaction; its outcome once that returned."""
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)  # a caller gone away: its error is not "unretrieved"
        self._waiting.setdefault(key, []).append((item, done))
        if key not in self._tasks:
            self._tasks[key] = asyncio.get_running_loop().create_task(self._drain(key))
        return await asyncio.shield(done)

    async def _drain(self, key: K) -> None:
        try:
            while queue := self._waiting.get(key):
                batch, self._waiting[key] = queue[: self._max], queue[self._max :]
                await self._one(key, batch)
        finally:
            # No await between the last look at the queue and here: what is queued after it
            # starts a new drain task. If this task was canceled, what still waits fails.
            self._tasks.pop(key, None)
            for _, done in self._waiting.pop(key, []):
                if not done.done():
                    done.set_exception(RuntimeError("group commit stopped"))

    async def _one(self, key: K, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            outcomes = await self._run(key, [item for item, _ in batch])
        except BaseException as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        if len(outcomes) != len(batch):  # pragma: no cover - a broken `run`
            raise RuntimeError("group commit: one outcome per item")
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            if done.done():
                continue
            if isinstance(outcome, BaseException):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)


def _retrieve(done: asyncio.Future[Any]) -> None:
    if not done.cancelled():
        done.exception()
