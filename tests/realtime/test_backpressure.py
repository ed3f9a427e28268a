"""Backpressure: a connection whose queue is full is failed (one error message, then closed)
without the sender ever waiting; the hub delivers to the other connections unchanged."""

from __future__ import annotations

import orjson

from pull.realtime.connection import Limits
from pull.realtime.kalshi_ws import KalshiConnection

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
        fast.queue.popleft()  # this one keeps reading
    assert slow.closing == (1013, "slow_consumer")
    assert [orjson.loads(m) for m in slow.queue] == [
        {"type": "error", "msg": {"code": 25, "msg": "Subscription buffer overflow"}}
    ]
    assert fast.closing is None
    slow.send("{}")  # after failing, nothing more is queued
    assert len(slow.queue) == 1


def test_command_rate_is_a_token_bucket() -> None:
    conn = KalshiConnection(protocol="kalshi", user_id="u1", limits=LIMITS)
    allowed = [conn.allow_command() for _ in range(6)]
    assert allowed == [True, True, True, True, False, False]
