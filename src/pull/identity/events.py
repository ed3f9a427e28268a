"""Relay of the identity module's domain events (outbox topic -> Redis pub/sub channel).

Published on `events:<topic>` after commit, payload {user_id} only (no PII):
`identity.user_registered`, `identity.email_verified`, `identity.phone_verified`.
Analytics reads the same rows from the outbox table (docs/analytics.md).

`identity.auth_changed` {user_id} is not published: its handler kills the user's cached
session checks (see auth_cache), the durable half of a revocation.
"""

from __future__ import annotations

import json
import uuid

from pull.identity import auth_cache
from pull.kit.outbox import Handler, OutboxEvent
from pull.kit.runtime import worker_runtime

CHANNEL_PREFIX = "events:"
TOPICS = ("identity.user_registered", "identity.email_verified", "identity.phone_verified")


async def publish(event: OutboxEvent) -> None:
    redis = worker_runtime().redis
    await redis.publish(CHANNEL_PREFIX + event.topic, json.dumps(event.payload))


async def auth_changed(event: OutboxEvent) -> None:
    await auth_cache.bump(worker_runtime().redis, uuid.UUID(event.payload["user_id"]))


def outbox_handlers() -> dict[str, Handler]:
    return {**dict.fromkeys(TOPICS, publish), auth_cache.TOPIC: auth_changed}
