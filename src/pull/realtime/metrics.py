"""Prometheus metrics of the live feeds (names used by deploy/ alerts and dashboards)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge(
    "stream_connections",
    "Open live-feed connections by protocol (kalshi = /trade-api/ws/v2, app = /api/v1/stream)",
    ["protocol"],
    multiprocess_mode="livesum",
)
SUBSCRIPTIONS = Gauge(
    "stream_subscriptions",
    "Active subscriptions by protocol",
    ["protocol"],
    multiprocess_mode="livesum",
)
MESSAGES_OUT = Counter(
    "stream_messages_sent_total", "Messages sent to clients by protocol", ["protocol"]
)
DROPS = Counter(
    "stream_dropped_connections_total",
    "Connections closed by the server, by reason (slow_consumer, rate_limited, too_large, idle, "
    "unresponsive, capacity)",
    ["protocol", "reason"],
)
EVENTS_IN = Counter("stream_events_received_total", "Stream entries read from Redis", ["stream"])
LAG = Histogram(
    "stream_event_lag_seconds",
    "Commit (publish) to this process reading the event from Redis",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
FANOUT = Histogram(
    "stream_fanout_seconds",
    "One tick's fan-out in this process: its book events handed to every subscription",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
HUB_CONNECTED = Gauge(
    "stream_hub_redis_connected",
    "1 while this process's stream reader is connected to Redis",
    multiprocess_mode="min",
)
HUB_RECONNECTS = Counter("stream_hub_reconnects_total", "Stream reader reconnections to Redis")
RESYNCS = Counter("stream_book_resyncs_total", "Book feeds reloaded after a seq gap")
DUPLICATES = Counter("stream_duplicate_events_total", "Book events seen twice (dropped)")
