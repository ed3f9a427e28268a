"""Backpressure: a connection whose queue is full is failed (one error message, then closed)
without the sender ever waiting; the hub delivers to the other connections unchanged. On a
raw socket, frames go straight to the transport while it is writable and queue (bounded) when
the transport's buffer is full."""

from __future__ import annotations

import asyncio

import orjson

from pull.realtime.connection import Limits
from pull.realtime.kalshi_ws import KalshiConnection
from pull.realtime.wire import text_frame

LIMITS = Limits(
    max_connections=10,
    max_subscriptions=5,
    max_markets=5,
    queue_size=3,
    max_message_bytes=1024,
    commands_per_second=2,
    idle_seconds=60,
)


def test_full_queue_fails_the_slow_connection_only() -> None:
    slow = KalshiConnection(protocol="kalshi", user_id="u1", limits=LIMITS)
    fast = KalshiConnection(protocol="kalshi", user_id="u2", limits=LIMITS)
    for i in range(5):
        slow.send(f'{{"n": {i}}}')
        fast.send(f'{{"n": {i}}}')
        fast.take()  # this one keeps reading
    assert slow.closing == (1013, "slow_consumer")
    assert [orjson.loads(m) for m, _ in slow.queue] == [
        {"type": "error", "msg": {"code": 25, "msg": "Subscription buffer overflow"}}
    ]
    assert fast.closing is None
    slow.send("{}")  # after failing, nothing more is queued
    assert len(slow.queue) == 1


def test_command_rate_is_a_token_bucket() -> None:
    conn = KalshiConnection(protocol="kalshi", user_id="u1", limits=LIMITS)
    allowed = [conn.allow_command() for _ in range(6)]
    assert allowed == [True, True, True, True, False, False]


class FakeRaw:
    """What a raw socket offers a connection: a writable flag and frame writes."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.written: list[bytes] = []

    def write(self, frames: bytes) -> bool:
        self.written.append(frames)
        return True


def test_raw_socket_writes_at_once_then_queues_while_the_transport_is_full() -> None:
    conn = KalshiConnection(protocol="kalshi", user_id="u1", limits=LIMITS)
    raw = FakeRaw()
    conn.raw = raw  # type: ignore[assignment]
    conn.wire = "raw"
    frames = text_frame(b'{"a":1}') + text_frame(b'{"b":2}')
    conn.deliver(frames, 2)
    assert raw.written == [frames] and not conn.queue
    raw.writable.clear()  # the client stopped reading: the transport paused writing
    conn.deliver(frames, 2)
    assert conn.queued == 2 and raw.written == [frames]
    conn.deliver(frames, 2)  # 4 > queue_size 3: the slow client is failed
    assert conn.closing == (1013, "slow_consumer")
    final, n = conn.take()
    assert n == 1 and final == text_frame(
        b'{"type":"error","msg":{"code":25,"msg":"Subscription buffer overflow"}}'
    )


def test_text_frame_lengths() -> None:
    assert text_frame(b"x") == b"\x81\x01x"
    assert text_frame(b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert text_frame(b"x" * 70_000)[:10] == b"\x81\x7f" + (70_000).to_bytes(8, "big")
