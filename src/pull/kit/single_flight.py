"""One load at a time for concurrent misses of one cache key (the exchange's and rewards' read
caches): without it, every request in flight when an answer ages out reads PostgreSQL itself.
The load is shared only under the same token, so an answer begun before an invalidation
message is never handed to a request that came after it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

Loading = dict[Hashable, tuple[Any, "asyncio.Future[Any]"]]


async def load_once(
    loading: dict[K, tuple[Any, asyncio.Future[Any]]],
    key: K,
    token: Any,
    load: Callable[[], Awaitable[T]],
) -> tuple[T, bool]:
    """(answer, whether this call read it): only the reader should keep the answer."""
    running = loading.get(key)
    if running is not None and running[0] == token:
        try:
            shared: T = await asyncio.shield(running[1])
            return shared, False
        except BaseException:
            if not running[1].done():
                raise  # this request itself was cancelled
            # the reader failed or was cancelled: this request reads for itself
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    loading[key] = (token, future)
    try:
        value = await load()
    except BaseException as exc:
        if isinstance(exc, Exception):
            future.set_exception(exc)
            future.exception()  # (retrieved: the waiters read for themselves)
        else:
            future.cancel()
        raise
    else:
        future.set_result(value)
        return value, True
    finally:
        if loading.get(key, (None, None))[1] is future:
            del loading[key]
