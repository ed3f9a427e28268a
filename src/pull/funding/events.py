"""Relay of the funding module's domain events (outbox topic -> Redis pub/sub channel).

After commit, each is published on `events:<topic>` for rewards and notifications:
`funding.deposit_settled`, `funding.deposit_failed`, `funding.deposit_returned`,
`funding.withdrawal_completed`, `funding.withdrawal_failed`, `funding.withdrawal_rejected`,
`funding.withdrawal_returned`; payload {deposit_id | withdrawal_id, user_id, amount, ...}.
"""

from __future__ import annotations

import json
import uuid

from pull.funding import recovery
from pull.kit.db import session_scope
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


# Credits from the exchange that repay a negative balance (docs/money.md, "Negative balances").
RECOVERY_TOPICS = ("exchange.settlement",)


async def recover_after_credit(event: OutboxEvent) -> None:
    """Settlement payouts repay what their receivers owe: one transaction per user who owes
    (each under the user's funding lock). Idempotent: what is owed is repaid once."""
    paid = [
        uuid.UUID(str(s["user_id"]))
        for s in event.payload.get("settlements", [])
        if int(s.get("revenue", 0)) > 0
    ]
    if not paid:
        return
    maker = worker_runtime().sessionmaker
    async with maker() as session:
        owing = await recovery.users_owing(session=session, user_ids=paid)
    for user_id in owing:
        async with session_scope(maker) as session:
            await recovery.recover(session=session, user_id=user_id, trigger=event.topic)


def with_recovery(handlers: dict[str, Handler]) -> dict[str, Handler]:
    """The relay's handlers with negative-balance recovery in front of `RECOVERY_TOPICS`."""
    out = dict(handlers)
    for topic in RECOVERY_TOPICS:
        then = handlers.get(topic)

        async def handle(event: OutboxEvent, then: Handler | None = then) -> None:
            await recover_after_credit(event)
            if then is not None:
                await then(event)

        out[topic] = handle
    return out
