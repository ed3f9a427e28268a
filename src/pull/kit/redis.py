"""Redis client construction: short timeouts so an outage fails fast instead of hanging."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

SOCKET_TIMEOUT = 0.5


def make_redis(url: str, *, max_connections: int = 50) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=SOCKET_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        health_check_interval=30,
        decode_responses=False,
    )
    return Redis(connection_pool=pool)
