"""Relay of the funding module's domain events (outbox topic -> Redis pub/sub channel).

After commit, each is published on `events:<topic>` for rewards and notifications:
`funding.deposit_settled`, `funding.deposit_failed`, `funding.deposit_returned`,
`funding.withdrawal_completed`, `funding.withdrawal_failed`, `funding.withdrawal_rejected`,
`funding.withdrawal_returned`; payload {deposit_id | withdrawal_id, user_id, amount, ...}.
"""

from __future__ import annotations

import json

from pull.kit.outbox import Handler, OutboxEvent
from pull.kit.runtime import worker_runtime

CHANNEL_PREFIX = "events:"
TOPICS = (
    "funding.deposit_settled",
    "funding.deposit_failed",
    "funding.deposit_returned",
    "funding.withdrawal_completed",
    "funding.withdrawal_failed",
    "funding.withdrawal_rejected",
    "funding.withdrawal_returned",
)


async def publish(event: OutboxEvent) -> None:
    redis = worker_runtime().redis
    await redis.publish(CHANNEL_PREFIX + event.topic, json.dumps(event.payload))


def outbox_handlers() -> dict[str, Handler]:
    return dict.fromkeys(TOPICS, publish)
