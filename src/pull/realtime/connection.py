"""One client connection of a live feed: a bounded outbound queue, the per-connection limits,
and the reader/writer loop over a WebSocket.

Backpressure: the hub never waits on a client. On a raw socket (pull.realtime.wire) whose
transport is below its high-water mark and with nothing queued, frames are written at once;
otherwise they are appended to the connection's queue, which a writer task drains as the
transport allows. When the queue holds STREAM_QUEUE_SIZE messages the client is not keeping
up, so the queue is dropped, one error message is sent and the connection is closed (a slow
client costs at most its queue, never the others' latency). Commands are rate limited per
connection (token bucket), inbound messages are size limited, and each process accepts at
most STREAM_MAX_CONNECTIONS.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from pull.config import Settings
from pull.realtime import metrics
from pull.realtime.wire import EXTENSION, RawSocket, text_frame

# WebSocket close codes
POLICY = 1008
TOO_BIG = 1009
TRY_AGAIN = 1013
GOING_AWAY = 1001


@dataclass(frozen=True)
class Limits:
    max_connections: int
    max_subscriptions: int
    max_markets: int
    queue_size: int
    max_message_bytes: int
    commands_per_second: float
    idle_seconds: float

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(
            max_connections=s.stream_max_connections,
            max_subscriptions=s.stream_max_subscriptions,
            max_markets=s.stream_max_markets,
            queue_size=s.stream_queue_size,
            max_message_bytes=s.stream_max_message_bytes,
            commands_per_second=s.stream_commands_per_second,
            idle_seconds=s.stream_idle_seconds,
        )


class Connection:
    """State shared by the protocols: who, what it is subscribed to, and its queue.

    `wire` is how bytes leave: "raw" (ready-made WebSocket frames written to the transport,
    pull.realtime.wire), "text" (ASGI `send_text`), "sse" (Server-Sent Events text). The hub's
    per-tick fan-out builds one payload per wire (and per sid/seq where a protocol needs it)
    and hands the same object to every connection that gets it (`deliver`)."""

    wire = "text"

    def __init__(self, *, protocol: str, user_id: str, limits: Limits) -> None:
        self.protocol = protocol
        self.user_id = user_id
        self.limits = limits
        # (payload, messages in it): bytes = frames for the raw socket, str = one message
        self.queue: deque[tuple[bytes | str, int]] = deque()
        self.queued = 0
        self.wake = asyncio.Event()
        self.closing: tuple[int, str] | None = None
        self.subs: dict[int, Any] = {}
        self.next_sid = 1
        self.tokens = limits.commands_per_second * 2
        self.refilled = time.monotonic()
        self.active_at = time.monotonic()
        self.raw: RawSocket | None = None
        self.out = metrics.MESSAGES_OUT.labels(protocol)

    def attach(self, ws: WebSocket) -> None:
        """After accept: write frames straight to the socket where the server offers it."""
        raw = ws.scope.get("extensions", {}).get(EXTENSION)
        if isinstance(raw, RawSocket):
            self.raw = raw
            self.wire = "raw"

    def on_wire(self, text: str) -> bytes | str:
        """One message as this connection's wire carries it."""
        return text_frame(text.encode()) if self.raw is not None else text

    # called by the hub (never awaits)
    def send(self, text: str) -> None:
        self.deliver(self.on_wire(text), 1)

    def deliver(self, payload: bytes | str | list[str], n: int) -> None:
        """Queue (or, on a raw socket with nothing queued, write right away) `n` messages:
        frames (bytes), one message (str) or several (list of str)."""
        if self.closing is not None:
            return
        raw = self.raw
        if raw is not None and isinstance(payload, bytes):
            if not self.queue and raw.writable.is_set():
                if raw.write(payload):
                    self.out.inc(n)
                return
        if self.queued + n > self.limits.queue_size:
            self.fail("slow_consumer", self.overflow_message(), TRY_AGAIN)
            return
        if isinstance(payload, list):
            self.queue.extend((p, 1) for p in payload)
        else:
            self.queue.append((payload, n))
        self.queued += n
        self.wake.set()

    def overflow_message(self) -> str:
        raise NotImplementedError

    def idle_message(self) -> str | None:
        return None

    def fail(self, reason: str, final: str | None, code: int) -> None:
        """Close after `final` (the queue's other messages are dropped)."""
        if self.closing is not None:
            return
        metrics.DROPS.labels(self.protocol, reason).inc()
        self.queue.clear()
        self.queued = 0
        if final is not None:
            self.queue.append((self.on_wire(final), 1))
            self.queued = 1
        self.closing = (code, reason)
        self.wake.set()

    def take(self) -> tuple[bytes | str, int]:
        payload, n = self.queue.popleft()
        self.queued -= n
        return payload, n

    def allow_command(self) -> bool:
        now = time.monotonic()
        rate = self.limits.commands_per_second
        self.tokens = min(rate * 2, self.tokens + (now - self.refilled) * rate)
        self.refilled = now
        self.active_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def take_sid(self) -> int:
        sid = self.next_sid
        self.next_sid += 1
        return sid

    def idle(self, now: float) -> bool:
        return not self.subs and now - self.active_at > self.limits.idle_seconds

    async def write_loop(self, write: Callable[[str], Awaitable[None]]) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.queue:
                payload, n = self.take()
                if isinstance(payload, bytes):
                    assert self.raw is not None
                    await self.raw.writable.wait()  # the transport's own flow control
                    if not self.raw.write(payload):
                        return
                else:
                    await write(payload)
                self.out.inc(n)
            if self.closing is not None:
                return


async def run_websocket(
    ws: WebSocket,
    conn: Connection,
    on_text: Callable[[str], Awaitable[None]],
    on_close: Callable[[], None],
) -> None:
    """Serve an accepted socket until either side ends it; the server closes it with the
    connection's close code after a failure (slow consumer, rate, size, idle)."""

    async def write(text: str) -> None:
        await ws.send_text(text)

    async def read() -> None:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", "replace")
            if text is None:
                continue
            if len(text) > conn.limits.max_message_bytes:
                conn.fail("too_large", None, TOO_BIG)
                return
            await on_text(text)

    metrics.CONNECTIONS.labels(conn.protocol).inc()
    reader = asyncio.create_task(read())
    writer = asyncio.create_task(conn.write_loop(write))
    try:
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        if conn.closing is not None and not writer.done():
            # give the final error message a moment to go out
            await asyncio.wait({writer}, timeout=1.0)
    except WebSocketDisconnect:
        pass
    finally:
        for task in (reader, writer):
            task.cancel()
        for task in (reader, writer):
            with contextlib.suppress(BaseException):
                await task
        on_close()
        metrics.CONNECTIONS.labels(conn.protocol).dec()
        code = conn.closing[0] if conn.closing else 1000
        with contextlib.suppress(Exception):
            await ws.close(code)
