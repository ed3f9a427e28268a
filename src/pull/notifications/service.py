"""The notification center: create (fan out), list and read, preferences, devices, alerts.

`notify` is what other modules and the event consumers call, in the caller's transaction: it
stores each notification once per (user, dedupe key) — the in-app channel — and, after
commit, starts a delivery workflow for the other enabled channels of the notifications it
created (one per DELIVERY_BATCH of them).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import service as exchange
from pull.exchange.errors import MarketNotFound as ExchangeMarketNotFound
from pull.notifications import repository as repo
from pull.notifications.catalog import CHANNELS, OUTBOUND, TYPES, default_enabled
from pull.notifications.errors import (
    AlertNotFound,
    DeviceNotFound,
    InvalidTimeZone,
    MarketNotFound,
    NotificationNotFound,
    TooManyAlerts,
)
from pull.notifications.models import Notification, NotificationDelivery, PriceAlert, PushDevice
from pull.notifications.quiet import valid_zone
from pull.notifications.schemas import (
    AlertCreate,
    ChannelPreference,
    PreferencesRead,
    PreferencesWrite,
    QuietHours,
)

WORKFLOW = "NotificationBatchDeliveryWorkflow"
CREATED_TOPIC = "notifications.created"
MAX_ACTIVE_ALERTS = 100
# Notifications per delivery workflow (one `notify` call makes ceil(n / DELIVERY_BATCH)).
DELIVERY_BATCH = 500


def batch_workflow_id(first_notification_id: uuid.UUID | str) -> str:
    """A delivery workflow is named after its first notification, which is in no other."""
    return f"notifications-{first_notification_id}"


@dataclass(frozen=True)
class Notice:
    """One notification to create. `dedupe_key` is the producer's business key: the same
    key for the same user is one notification however often it is sent."""

    user_id: uuid.UUID
    type: str
    title: str
    body: str
    dedupe_key: str
    data: dict[str, Any] = field(default_factory=dict)
    # Channels the producer has already covered itself (e.g. the rewards module e-mails its
    # expiry warning): written `skipped` whatever the preferences say, never sent again.
    done_channels: frozenset[str] = frozenset()


def _enabled_map(
    prefs: Sequence[Any],
) -> dict[tuple[uuid.UUID, str, str], bool]:
    return {(p.user_id, p.type, p.channel): p.enabled for p in prefs}


async def notify(*, session: AsyncSession, notices: Sequence[Notice]) -> list[uuid.UUID]:
    """Create the notifications (skipping ones that exist) and queue their delivery; returns
    the ids created. The caller commits; nothing is delivered if it rolls back.

    Set-based: one INSERT each for the notifications, their delivery rows and their outbox
    events, whatever the number of notices; the outbound channels of up to DELIVERY_BATCH
    notifications go to one delivery workflow (docs/messaging.md, "Delivery")."""
    for n in notices:
        if n.type not in TYPES:
            raise ValueError(f"unknown notification type {n.type}")
    rows: list[dict[str, Any]] = [
        {
            "id": uuid.uuid4(),
            "user_id": n.user_id,
            "type": n.type,
            "title": n.title[:200],
            "body": n.body,
            "data": n.data,
            "dedupe_key": n.dedupe_key[:200],
        }
        for n in notices
    ]
    created = await repo.insert_notifications(session, rows)
    if not created:
        return []
    by_id = {uuid.UUID(str(r["id"])): r for r in rows}
    done = {uuid.UUID(str(r["id"])): n.done_channels for r, n in zip(rows, notices, strict=True)}
    enabled = _enabled_map(await repo.preferences(session, user_ids=list({u for _, u in created})))
    now = dt.datetime.now(dt.UTC)
    deliveries: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    to_deliver: list[str] = []
    for nid, user_id in created:
        row = by_id[nid]
        type_ = str(row["type"])
        on = {ch: enabled.get((user_id, type_, ch), default_enabled(type_, ch)) for ch in CHANNELS}
        deliveries.append(
            {
                "notification_id": nid,
                "channel": "in_app",
                "status": "sent" if on["in_app"] else "skipped",
                "sent_at": now if on["in_app"] else None,
                "detail": None if on["in_app"] else "disabled",
            }
        )
        covered = [ch for ch in OUTBOUND if on[ch] and ch in done[nid]]
        outbound = [ch for ch in OUTBOUND if on[ch] and ch not in done[nid]]
        deliveries.extend(
            {
                "notification_id": nid,
                "channel": ch,
                "status": "pending",
                "sent_at": None,
                "detail": None,
            }
            for ch in outbound
        )
        deliveries.extend(
            {
                "notification_id": nid,
                "channel": ch,
                "status": "skipped",
                "sent_at": None,
                "detail": "sent by the producer",
            }
            for ch in covered
        )
        if on["in_app"]:
            events.append(
                {
                    "topic": CREATED_TOPIC,
                    "key": str(user_id),
                    "payload": {
                        "user_id": str(user_id),
                        "notification_id": str(nid),
                        "type": row["type"],
                        "title": row["title"],
                        "body": row["body"],
                        "data": row["data"],
                    },
                }
            )
        if outbound:
            to_deliver.append(str(nid))
    for i in range(0, len(to_deliver), DELIVERY_BATCH):
        ids = to_deliver[i : i + DELIVERY_BATCH]
        wid = batch_workflow_id(ids[0])
        events.append(
            {
                "topic": "temporal.start",
                "key": wid,
                "payload": {"workflow": WORKFLOW, "id": wid, "arg": {"notification_ids": ids}},
            }
        )
    await repo.insert_deliveries(session, deliveries)
    await repo.insert_outbox(session, events)
    return [nid for nid, _ in created]


# --- the inbox -------------------------------------------------------------------------------


async def list_notifications(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    unread_only: bool,
    limit: int,
) -> tuple[list[Notification], int]:
    items = await repo.list_notifications(
        session, user_id=user_id, before=before, unread_only=unread_only, limit=limit
    )
    return items, await repo.unread_count(session, user_id=user_id)


async def mark_read(
    *, session: AsyncSession, user_id: uuid.UUID, ids: Sequence[uuid.UUID] | None
) -> tuple[int, int]:
    """Mark some (or all) of the user's notifications read; another user's ids are ignored."""
    marked = await repo.mark_read(session, user_id=user_id, ids=ids)
    return marked, await repo.unread_count(session, user_id=user_id)


async def get_own(
    *, session: AsyncSession, user_id: uuid.UUID, notification_id: uuid.UUID
) -> Notification:
    note = await repo.notification(session, notification_id)
    if note is None or note.user_id != user_id:
        raise NotificationNotFound()
    return note


async def deliveries(
    *, session: AsyncSession, notification_id: uuid.UUID
) -> list[NotificationDelivery]:
    return await repo.deliveries(session, notification_id=notification_id)


async def unread_count(*, session: AsyncSession, user_id: uuid.UUID) -> int:
    return await repo.unread_count(session, user_id=user_id)


# --- preferences ------------------------------------------------------------------------------


async def get_preferences(*, session: AsyncSession, user_id: uuid.UUID) -> PreferencesRead:
    enabled = _enabled_map(await repo.preferences(session, user_ids=[user_id]))
    settings = await repo.settings(session, user_id=user_id)
    quiet = None
    if settings is not None and settings.quiet_start is not None and settings.quiet_end:
        quiet = QuietHours(start=settings.quiet_start, end=settings.quiet_end)
    return PreferencesRead(
        time_zone=settings.time_zone if settings else "UTC",
        quiet_hours=quiet,
        preferences=[
            ChannelPreference(
                type=t,
                channel=c,
                enabled=enabled.get((user_id, t, c), default_enabled(t, c)),
            )
            for t in TYPES
            for c in CHANNELS
        ],
    )


async def put_preferences(
    *, session: AsyncSession, user_id: uuid.UUID, data: PreferencesWrite
) -> PreferencesRead:
    if data.time_zone is not None and not valid_zone(data.time_zone):
        raise InvalidTimeZone(details={"time_zone": data.time_zone})
    await repo.upsert_preferences(
        session, user_id=user_id, values=[(p.type, p.channel, p.enabled) for p in data.preferences]
    )
    if data.time_zone is not None or data.quiet_hours is not None or data.clear_quiet_hours:
        current = await repo.settings(session, user_id=user_id)
        start = current.quiet_start if current else None
        end = current.quiet_end if current else None
        if data.clear_quiet_hours:
            start = end = None
        if data.quiet_hours is not None:
            start, end = data.quiet_hours.start, data.quiet_hours.end
        await repo.upsert_settings(
            session,
            user_id=user_id,
            time_zone=data.time_zone or (current.time_zone if current else "UTC"),
            quiet_start=start,
            quiet_end=end,
        )
    await session.flush()
    return await get_preferences(session=session, user_id=user_id)


OPTED_IN_PAGE = 1000


async def opted_in(
    *, session: AsyncSession, type_: str, after: uuid.UUID | None
) -> list[uuid.UUID]:
    """A page (OPTED_IN_PAGE, id order) of the customers who turned on a channel of an opt-in
    type (catalog.OPT_IN): its recipient list."""
    return await repo.opted_in(session, type_=type_, after=after, limit=OPTED_IN_PAGE)


# --- devices ----------------------------------------------------------------------------------


async def register_device(
    *, session: AsyncSession, user_id: uuid.UUID, platform: str, token: str
) -> PushDevice:
    return await repo.upsert_device(session, user_id=user_id, platform=platform, token=token)


async def list_devices(*, session: AsyncSession, user_id: uuid.UUID) -> list[PushDevice]:
    return await repo.devices(session, user_id=user_id)


async def remove_device(*, session: AsyncSession, user_id: uuid.UUID, device_id: uuid.UUID) -> None:
    if not await repo.delete_device(session, user_id=user_id, device_id=device_id):
        raise DeviceNotFound()


# --- price alerts -----------------------------------------------------------------------------


async def create_alert(
    *, session: AsyncSession, user_id: uuid.UUID, data: AlertCreate
) -> PriceAlert:
    try:
        market = await exchange.get_market(session=session, ticker=data.ticker)
    except ExchangeMarketNotFound as exc:
        raise MarketNotFound(details={"ticker": data.ticker}) from exc
    if await repo.count_active_alerts(session, user_id=user_id) >= MAX_ACTIVE_ALERTS:
        raise TooManyAlerts(details={"max": MAX_ACTIVE_ALERTS})
    direction, price = ("above", data.above) if data.above is not None else ("below", data.below)
    assert price is not None
    row = PriceAlert(
        user_id=user_id, ticker=market.ticker, direction=direction, price=price, status="active"
    )
    repo.add_alert(session, row)
    await session.flush()
    return row


async def list_alerts(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[PriceAlert]:
    return await repo.alerts(session, user_id=user_id, before=before, limit=limit)


async def cancel_alert(
    *, session: AsyncSession, user_id: uuid.UUID, alert_id: uuid.UUID
) -> PriceAlert:
    row = await repo.alert(session, alert_id)
    if row is None or row.user_id != user_id:
        raise AlertNotFound()
    if row.status == "active":
        row.status = "canceled"
    await session.flush()
    return row


async def trigger_price_alerts(
    *, session: AsyncSession, ticker: str, prices: Sequence[int], event_key: str
) -> int:
    """Fire the alerts the trades at `prices` crossed, each once, as notifications."""
    if not prices:
        return 0
    low, high = min(prices), max(prices)
    fired = await repo.trigger_alerts(session, ticker=ticker, low=low, high=high)
    notices = []
    for a in fired:
        a.triggered_price = high if a.direction == "above" else low
        word = "at or above" if a.direction == "above" else "at or below"
        notices.append(
            Notice(
                user_id=a.user_id,
                type="price_alert",
                title=f"{ticker} traded {word} {a.price}¢",
                body=f"{ticker} traded at {a.triggered_price}¢ (your alert: {word} {a.price}¢).",
                dedupe_key=f"alert:{a.id}",
                data={
                    "ticker": ticker,
                    "alert_id": str(a.id),
                    "price": a.triggered_price,
                    "event": event_key,
                },
            )
        )
    await notify(session=session, notices=notices)
    return len(fired)
