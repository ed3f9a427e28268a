"""A few seconds' memory of the API's public answers, shared by every user of this process.

Market data (the series list, a market, its candles) is the same for every signed-in user, and
50 users' pages asked the API for it again and again: 2 of the 3.75 API calls of an average
page in bench/web.py. An answer is kept WEB_PUBLIC_CACHE_SECONDS (2 s: the live stream moves
the book and fills, which are never cached); callers that miss together share one API call.
Each page still makes at least one call with the user's own token, so a revoked session is
still noticed on the next page. Answers are shared objects: pages read them, never change them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

MAX_ENTRIES = 2_000


class PublicCache:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._answers: dict[str, tuple[float, Any]] = {}
        self._flights: dict[str, asyncio.Future[Any]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[Any]]) -> Any:
        """The answer under `key` if it is younger than `seconds`, else `load()`'s (errors are
        not kept: the next caller asks again)."""
        if self.seconds <= 0:
            return await load()
        now = time.monotonic()
        hit = self._answers.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        flight = self._flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight)
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            answer = await load()
        except BaseException as exc:
            if not flight.done():
                flight.set_exception(exc)
                flight.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            flight.set_result(answer)
            if len(self._answers) >= MAX_ENTRIES:
                self._answers = {k: v for k, v in self._answers.items() if v[0] > now}
                if len(self._answers) >= MAX_ENTRIES:
                    self._answers.clear()
            self._answers[key] = (time.monotonic() + self.seconds, answer)
            return answer
        finally:
            self._flights.pop(key, None)
