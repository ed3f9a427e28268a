"""`Invalidations.fence()`: "published" means "delivered". A fence returns only once its own
token has come back on its process's subscription, and by then a message published before it
is already with every other subscriber; a process without a live subscription does not wait.

The fencing process's connections go through a proxy that holds back what Redis sends on its
subscription connection by DELAY: a fence that did not wait for its echo returns before that."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from redis.asyncio import Redis

from pull.kit.invalidation import Invalidations

DELAY = 0.2
CHANNEL = "test:fence"


async def _until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _slow_subscription_proxy(host: str, port: int) -> AsyncIterator[int]:
    """A TCP proxy to Redis; on a connection that has sent SUBSCRIBE, Redis's bytes are held
    back by DELAY (in order)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, port)
        loop = asyncio.get_running_loop()
        subscribed = False

        def forward(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        async def upstream() -> None:
            nonlocal subscribed
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                subscribed = subscribed or b"SUBSCRIBE" in data.upper()
                up_writer.write(data)

        async def downstream() -> None:
            while True:
                data = await up_reader.read(65536)
                if not data:
                    return
                loop.call_later(DELAY if subscribed else 0.0, forward, data)  # (in order)

        try:
            await asyncio.gather(upstream(), downstream())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            up_writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_a_fence_returns_after_its_echo_and_the_messages_before_it_are_delivered(
    redis: Redis,
) -> None:
    kwargs = redis.connection_pool.connection_kwargs
    host, port = str(kwargs.get("host", "localhost")), int(kwargs.get("port", 6379))
    heard: list[bytes] = []
    other = Invalidations(redis)  # another process: its subscription is direct
    other.handle(CHANNEL, heard.append)
    other.start()
    async with _slow_subscription_proxy(host, port) as proxy_port:
        slow_redis = Redis(host="127.0.0.1", port=proxy_port)
        fencing = Invalidations(slow_redis)
        fencing.start()
        try:
            await _until(lambda: other.live() and fencing.live())
            await slow_redis.publish(CHANNEL, b"changed")
            started = time.monotonic()
            await fencing.fence()
            waited = time.monotonic() - started
            assert waited >= DELAY * 0.9, waited  # it waited for its own token to come back
            assert heard == [b"changed"]  # ... by when the other subscriber had the message
        finally:
            await fencing.stop()
            await slow_redis.aclose()
            await other.stop()


async def test_without_a_live_subscription_a_fence_does_not_wait(redis: Redis) -> None:
    never_started = Invalidations(redis)
    started = time.monotonic()
    await never_started.fence()
    assert time.monotonic() - started < 0.1
