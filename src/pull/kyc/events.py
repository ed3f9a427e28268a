"""Relay of the KYC module's domain events (outbox topic → Redis pub/sub channel).

`kyc.approved` {user_id, tier, application_id} is published on the Redis channel
`events:kyc.approved` after commit; the rewards module subscribes to award points.
`kyc.tier_changed` {user_id, from, to} on every change of tier (approvals, admin, expiry).
"""

from __future__ import annotations

import json

from pull.kit.outbox import Handler, OutboxEvent
from pull.kit.runtime import worker_runtime

CHANNEL_PREFIX = "events:"


async def publish(event: OutboxEvent) -> None:
    redis = worker_runtime().redis
    await redis.publish(CHANNEL_PREFIX + event.topic, json.dumps(event.payload))


def outbox_handlers() -> dict[str, Handler]:
    return {"kyc.approved": publish, "kyc.tier_changed": publish}
