"""Process-wide resources of the worker, shared by activities (set once at start-up)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pull.config import Settings


@dataclass
class WorkerRuntime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis


_runtime: WorkerRuntime | None = None


def set_worker_runtime(runtime: WorkerRuntime | None) -> None:
    global _runtime
    _runtime = runtime


def worker_runtime() -> WorkerRuntime:
    if _runtime is None:
        raise RuntimeError("worker runtime is not initialised")
    return _runtime
