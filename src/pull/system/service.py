"""Dependency checks behind /health/ready and /health/detailed."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

Status = Literal["pass", "warn", "fail"]
# A dependency that answers but slower than this is reported as "warn".
SLOW_MS = 500.0


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "latency_ms": round(self.latency_ms, 2)}
        if self.error:
            out["error"] = self.error
        return out


async def _timed(name: str, probe: Any, timeout: float) -> Check:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), timeout=timeout)
    except TimeoutError:
        return Check(name, "fail", (time.perf_counter() - start) * 1000, "timeout")
    except Exception as exc:
        return Check(name, "fail", (time.perf_counter() - start) * 1000, type(exc).__name__)
    elapsed = (time.perf_counter() - start) * 1000
    return Check(name, "warn" if elapsed > SLOW_MS else "pass", elapsed)


async def check_dependencies(
    *,
    engine: AsyncEngine,
    redis: Redis,
    temporal: Client | None,
    temporal_connect: Any,
    timeout: float,
) -> list[Check]:
    async def db() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def cache() -> None:
        await redis.ping()

    async def workflows() -> None:
        client = temporal or await temporal_connect()
        await client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=None)

    return list(
        await asyncio.gather(
            _timed("database", db, timeout),
            _timed("redis", cache, timeout),
            _timed("temporal", workflows, timeout),
        )
    )
