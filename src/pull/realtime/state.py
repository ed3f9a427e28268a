"""The process's live-feed state: the hub, the limits and the open connections."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.realtime.connection import Connection, Limits
from pull.realtime.hub import Hub


class LiveState:
    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.limits = Limits.from_settings(settings)
        self.hub = Hub(
            redis_url=settings.redis_url,
            sessionmaker=sessionmaker,
            gap_seconds=settings.stream_gap_seconds,
            tick_seconds=settings.stream_tick_seconds,
        )
        self.connections: set[Connection] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.hub.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="realtime-idle-sweep")

    async def stop(self) -> None:
        for conn in list(self.connections):
            conn.fail("shutdown", None, 1001)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.hub.stop()

    def admit(self, conn: Connection) -> bool:
        if len(self.connections) >= self.limits.max_connections:
            return False
        self.connections.add(conn)
        return True

    def release(self, conn: Connection) -> None:
        self.connections.discard(conn)

    async def _sweep(self) -> None:
        """Close connections that subscribed to nothing for STREAM_IDLE_SECONDS."""
        while True:
            await asyncio.sleep(min(5.0, self.limits.idle_seconds / 2))
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.idle(now):
                    conn.fail("idle", conn.idle_message(), 1000)


def live(app: Any) -> LiveState:
    state: LiveState = app.state.live
    return state
