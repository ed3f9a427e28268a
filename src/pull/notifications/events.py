"""The notifications module on the outbox relay.

For each topic in `producers.BUILDERS` the relay runs `consume` after the topic's existing
handler (the Redis publish, rewards): one transaction creating the notifications (idempotent
by dedupe key) and, for `exchange.trade`, firing the price alerts the trades crossed.
`notifications.created` pushes a new in-app notification on the customer's live stream
(type `notification`): a batch handler (`batch_handlers`), the relay batch's pushes in one
Redis pipeline (`pull.realtime.publish.publish_user_events`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.kit.db import session_scope
from pull.kit.outbox import BatchHandler, Handler, OutboxEvent
from pull.kit.runtime import worker_runtime
from pull.kyc import service as kyc
from pull.ledger import service as ledger
from pull.notifications import producers, service
from pull.realtime.publish import UserEvent, publish_user_events
from pull.rwa import service as rwa


async def _buyout_holders(session: AsyncSession, currency: str) -> list[tuple[uuid.UUID, int]]:
    out: list[tuple[uuid.UUID, int]] = []
    after: uuid.UUID | None = None
    while True:
        page = await ledger.currency_holders(
            session=session, currency=currency, after=after, limit=1000
        )
        out.extend(page)
        if len(page) < 1000:
            return out
        after = page[-1][0]


async def _offering_audience(
    session: AsyncSession, topic: str, p: dict[str, Any]
) -> list[uuid.UUID]:
    """Who hears of an offering opening or closing soon: the customers who turned on a channel
    of `rwa_listing` and whose KYC tier may subscribe to it; for "closing soon", not those
    who have subscribed already. Pages of OFFERING_PAGE users, three queries a page."""
    required = kyc.Tier(str(p.get("kyc_tier", "basic")))
    offering_id = uuid.UUID(str(p["offering_id"]))
    out: list[uuid.UUID] = []
    after: uuid.UUID | None = None
    while True:
        page = await service.opted_in(session=session, type_="rwa_listing", after=after)
        tiers = await kyc.get_tiers(session=session, user_ids=page)
        eligible = [u for u in page if tiers[u].rank >= required.rank]
        if topic == "rwa.offering_closing_soon" and eligible:
            done = await rwa.offering_investors(
                session=session, offering_id=offering_id, user_ids=eligible
            )
            eligible = [u for u in eligible if u not in done]
        out.extend(eligible)
        if len(page) < service.OPTED_IN_PAGE:
            return out
        after = page[-1]


async def consume(event: OutboxEvent) -> None:
    async with session_scope(worker_runtime().sessionmaker) as session:
        if event.topic == "rwa.buyout_opened":  # trading is halted: the holders stand still
            holders = await _buyout_holders(session, str(event.payload["currency"]))
            notices = producers.buyout_vote(event.payload, holders)
        elif event.topic in ("rwa.offering_opened", "rwa.offering_closing_soon"):
            users = await _offering_audience(session, event.topic, event.payload)
            notices = producers.offering_notice(event.topic, event.payload, users)
        else:
            notices = producers.BUILDERS[event.topic](event.id, event.payload)
        await service.notify(session=session, notices=notices)
        if event.topic == "exchange.trade":
            prices = [int(f["yes_price"]) for f in event.payload.get("fills", [])]
            await service.trigger_price_alerts(
                session=session,
                ticker=str(event.payload["ticker"]),
                prices=prices,
                event_key=f"exchange.trade:{event.id}",
            )


async def push_live(events: list[OutboxEvent]) -> dict[int, str]:
    """The relay batch's in-app notifications on their customers' live streams, in one Redis
    pipeline (best effort: the inbox has them). The notification id is the stream event's id,
    so a notification pushed twice (a redelivered event, a duplicate in the batch) is appended
    once. Returns the events that could not be read, by id, with their error."""
    failed: dict[int, str] = {}
    out: dict[str, UserEvent] = {}
    for event in events:
        p = event.payload
        try:
            eid = f"notification-{uuid.UUID(str(p['notification_id']))}"
            user_id = uuid.UUID(str(p["user_id"]))
        except (KeyError, ValueError) as exc:
            failed[event.id] = f"{type(exc).__name__}: {exc}"
            continue
        out.setdefault(eid, UserEvent(user_id, "notification", p, eid))
    await publish_user_events(worker_runtime().redis, list(out.values()))
    return failed


def _chain(first: Handler | None, then: Handler) -> Handler:
    async def handle(event: OutboxEvent) -> None:
        if first is not None:
            await first(event)
        await then(event)

    return handle


def with_notifications(handlers: dict[str, Handler]) -> dict[str, Handler]:
    out = dict(handlers)
    for topic in (*producers.BUILDERS, *producers.RESOLVED_TOPICS):
        out[topic] = _chain(handlers.get(topic), consume)
    return out


def batch_handlers() -> dict[str, BatchHandler]:
    """The live-stream push of `notifications.created`, once per relay batch."""
    return {service.CREATED_TOPIC: push_live}
