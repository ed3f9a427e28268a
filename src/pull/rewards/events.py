"""The rewards module on the outbox relay.

- The earning consumer: for the topics in `earning.CONSUMED_TOPICS` (kyc.approved,
  funding.deposit_settled / _returned, exchange.trade, exchange.settlement, ...) the relay
  runs the batch handler `consume` once per relay batch (`consumer.consume`: the events in
  one transaction, idempotent per outbox event id; per event if the batch fails) after the
  topics' per-event handlers (the Redis publish), so a rewards failure never holds back the
  others' first delivery. A failure leaves the event undelivered, so the relay retries it
  (the publish may then repeat: delivery is at least once); a retry of an applied event
  changes nothing.
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
from pull.kit.outbox import BatchHandler, Handler, OutboxEvent
from pull.kit.runtime import worker_runtime
from pull.rewards import consumer, earning, leaderboard

CHANNEL_PREFIX = "events:"


async def consume(events: list[OutboxEvent]) -> dict[int, str]:
    """The relay's batch handler: the batch's events in one transaction (per event if it
    fails); the failures stay undelivered."""
    runtime = worker_runtime()
    return await consumer.consume(
        runtime.sessionmaker, [consumer.event_in(e) for e in events], runtime.settings
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


def with_rewards(handlers: dict[str, Handler]) -> dict[str, Handler]:
    """The relay's per-event handlers with the rewards topics' own."""
    out = dict(handlers)
    out["rewards.earned"] = earned
    out["rewards.points_expiring"] = publish
    out["rewards.leaderboard_name"] = leaderboard_name
    return out


def batch_handlers() -> dict[str, BatchHandler]:
    """The earning consumer on every topic it consumes: the relay runs it after the topic's
    per-event handlers (the Redis publish), once per relay batch, for the events they
    delivered."""
    return dict.fromkeys(earning.CONSUMED_TOPICS, consume)
