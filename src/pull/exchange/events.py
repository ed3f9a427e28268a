"""Relay of the exchange's domain events (outbox topic -> Redis pub/sub channel).

Published on `events:<topic>` after commit; rewards and notifications subscribe:
- `exchange.trade` {ticker, order_id, user_id, side, action, fills: [{count, yes_price,
  maker_user_id, maker_order_id, taker_fee, maker_fee}]}
- `exchange.market` {ticker, status, result?}  (initialized, open, paused, closed, settled)
- `exchange.settlement` {ticker, result, settlements: [{user_id, revenue}]}  (per batch)
"""

from __future__ import annotations

import json

from pull.kit.outbox import Handler, OutboxEvent
from pull.kit.runtime import worker_runtime

CHANNEL_PREFIX = "events:"
TOPICS = ("exchange.trade", "exchange.market", "exchange.settlement")


async def publish(event: OutboxEvent) -> None:
    redis = worker_runtime().redis
    await redis.publish(CHANNEL_PREFIX + event.topic, json.dumps(event.payload))


def outbox_handlers() -> dict[str, Handler]:
    return dict.fromkeys(TOPICS, publish)
