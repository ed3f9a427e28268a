"""Outbox handlers of the live feeds (run by the worker's relay).

`exchange.book` and `exchange.order` are appended to the streams by the book command right
after its commit; the relay appends them again from the outbox, which is a no-op unless that
publish was lost (`xadd_once`). Other modules' user-facing events (funding, KYC) become events
on the user's stream; `exchange.market` lifecycle changes become market events.
"""

from __future__ import annotations

import uuid
from typing import Any

from pull.exchange.book_events import (
    BOOK_TOPIC,
    EVENT_TOPIC,
    ORDER_TOPIC,
    lifecycle_event,
    user_event,
)
from pull.kit import streams
from pull.kit.outbox import Handler, OutboxEvent
from pull.kit.runtime import worker_runtime
from pull.realtime.publish import publish_user_event

# Topics whose payload names a `user_id` and that the user's app shows live.
USER_TOPICS = (
    "funding.deposit_settled",
    "funding.deposit_failed",
    "funding.deposit_returned",
    "funding.withdrawal_completed",
    "funding.withdrawal_failed",
    "funding.withdrawal_rejected",
    "funding.withdrawal_returned",
    "kyc.approved",
    "kyc.tier_changed",
)


async def relay_book(event: OutboxEvent) -> None:
    await streams.publish_market(worker_runtime().redis, event.payload)


async def relay_order(event: OutboxEvent) -> None:
    payload = event.payload
    await streams.publish_user(worker_runtime().redis, payload["user_id"], user_event(payload))


async def relay_user_topic(event: OutboxEvent) -> None:
    payload: dict[str, Any] = event.payload
    user_id = payload.get("user_id")
    if not user_id:
        return
    await publish_user_event(
        worker_runtime().redis,
        user_id=uuid.UUID(str(user_id)),
        type=event.topic,
        data=payload,
        event_id=f"outbox-{event.id}",
    )


async def relay_lifecycle(event: OutboxEvent) -> None:
    """`exchange.market` {ticker, status, result?, eid?} as a market lifecycle event, and
    `exchange.event` as an event lifecycle event. The committing process published it right
    after its commit under the payload's `eid` (then this append is a no-op); without an
    `eid` (a commit that bypassed the hooks) it is published only here."""
    payload = event.payload
    await streams.publish_market(
        worker_runtime().redis,
        lifecycle_event(event.topic, payload, eid=str(payload.get("eid") or f"outbox-{event.id}")),
    )


def outbox_handlers() -> dict[str, Handler]:
    return {BOOK_TOPIC: relay_book, ORDER_TOPIC: relay_order, EVENT_TOPIC: relay_lifecycle}


def with_user_stream(handlers: dict[str, Handler]) -> dict[str, Handler]:
    """After each user-facing topic's own handler, push the event to the user's stream (and
    market lifecycle changes to the market stream)."""
    out = dict(handlers)
    market = handlers.get("exchange.market")

    async def lifecycle(event: OutboxEvent, inner: Handler | None = market) -> None:
        if inner is not None:
            await inner(event)
        await relay_lifecycle(event)

    out["exchange.market"] = lifecycle
    for topic in USER_TOPICS:
        inner = handlers.get(topic)

        async def both(event: OutboxEvent, inner: Handler | None = inner) -> None:
            if inner is not None:
                await inner(event)
            await relay_user_topic(event)

        out[topic] = both
    return out
