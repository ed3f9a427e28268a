"""The rewards module on the outbox relay.

- The earning consumer: for each topic in `earning.CONSUMED_TOPICS` (kyc.approved,
  funding.deposit_settled / _returned, exchange.trade, exchange.settlement, ...) the relay
  runs `consume` (its own transaction, idempotent by outbox event id) after the topic's
  existing handler (the Redis publish), so a rewards failure never holds back the others'
  first delivery. A failure leaves the event undelivered, so the relay retries it (the
  publish may then repeat: delivery is at least once); a retry of an applied event changes
  nothing.
- `rewards.earned`: increments the leaderboards (once per lot) and is published on
  `events:rewards.earned`; `rewards.points_expiring` is published on its channel for the
  notification path; `rewards.leaderboard_name` puts a user's leaderboard name choice on the
  boards.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from pull.kit.db import session_scope
from pull.kit.outbox import Handler, OutboxEvent
from pull.kit.runtime import worker_runtime
from pull.rewards import earning, leaderboard

CHANNEL_PREFIX = "events:"


async def consume(event: OutboxEvent) -> None:
    runtime = worker_runtime()
    async with session_scope(runtime.sessionmaker) as session:
        await earning.consume_event(
            session=session,
            event_id=event.id,
            topic=event.topic,
            payload=event.payload,
            occurred_at=event.created_at,
            settings=runtime.settings,
        )


async def publish(event: OutboxEvent) -> None:
    await worker_runtime().redis.publish(CHANNEL_PREFIX + event.topic, json.dumps(event.payload))


async def earned(event: OutboxEvent) -> None:
    p = event.payload
    await leaderboard.apply_earned(
        worker_runtime().redis,
        user_id=str(p["user_id"]),
        lot_id=int(p["lot_id"]),
        points=int(p["points"]),
        at=dt.datetime.fromisoformat(str(p["at"])),
    )
    await publish(event)


async def leaderboard_name(event: OutboxEvent) -> None:
    runtime = worker_runtime()
    async with session_scope(runtime.sessionmaker) as session:
        await leaderboard.refresh_name(
            session=session, redis=runtime.redis, user_id=uuid.UUID(str(event.payload["user_id"]))
        )


def _chain(first: Handler | None, then: Handler) -> Handler:
    async def handle(event: OutboxEvent) -> None:
        if first is not None:
            await first(event)
        await then(event)

    return handle


def with_rewards(handlers: dict[str, Handler]) -> dict[str, Handler]:
    """The relay's handlers with the rewards consumer in front of the topics it consumes."""
    out = dict(handlers)
    for topic in earning.CONSUMED_TOPICS:
        out[topic] = _chain(handlers.get(topic), consume)
    out["rewards.earned"] = earned
    out["rewards.points_expiring"] = publish
    out["rewards.leaderboard_name"] = leaderboard_name
    return out
