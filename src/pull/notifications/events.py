"""The notifications module on the outbox relay.

For each topic in `producers.BUILDERS` the relay runs `consume` after the topic's existing
handler (the Redis publish, rewards): one transaction creating the notifications (idempotent
by dedupe key) and, for `exchange.trade`, firing the price alerts the trades crossed.
`notifications.created` pushes a new in-app notification on the customer's live stream.
"""

from __future__ import annotations

import json

from pull.kit.db import session_scope
from pull.kit.outbox import Handler, OutboxEvent
from pull.kit.runtime import worker_runtime
from pull.notifications import producers, service

USER_CHANNEL_PREFIX = "user-events:"


async def consume(event: OutboxEvent) -> None:
    build = producers.BUILDERS[event.topic]
    notices = build(event.id, event.payload)
    async with session_scope(worker_runtime().sessionmaker) as session:
        await service.notify(session=session, notices=notices)
        if event.topic == "exchange.trade":
            prices = [int(f["yes_price"]) for f in event.payload.get("fills", [])]
            await service.trigger_price_alerts(
                session=session,
                ticker=str(event.payload["ticker"]),
                prices=prices,
                event_key=f"exchange.trade:{event.id}",
            )


async def push_live(event: OutboxEvent) -> None:
    """The in-app notification on the customer's live stream (best effort: the inbox has it)."""
    p = event.payload
    message = {"type": "notification", "data": p}
    await worker_runtime().redis.publish(
        USER_CHANNEL_PREFIX + str(p["user_id"]), json.dumps(message)
    )


def _chain(first: Handler | None, then: Handler) -> Handler:
    async def handle(event: OutboxEvent) -> None:
        if first is not None:
            await first(event)
        await then(event)

    return handle


def with_notifications(handlers: dict[str, Handler]) -> dict[str, Handler]:
    out = dict(handlers)
    for topic in producers.BUILDERS:
        out[topic] = _chain(handlers.get(topic), consume)
    out[service.CREATED_TOPIC] = push_live
    return out
