"""SQL of the notifications module."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, any_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from pull.kit.db import utcnow
from pull.notifications.models import (
    Notification,
    NotificationDelivery,
    NotificationPreference,
    NotificationSettings,
    PriceAlert,
    PushDevice,
    SandboxPush,
)

# Fan-out writes are one statement per batch over arrays (`unnest`): a fixed SQL text that
# asyncpg prepares once, where a multi-row VALUES of N rows made SQLAlchemy compile N x columns
# bind parameters on every call (most of `notify`'s CPU; docs/performance.md).
_INSERT_NOTIFICATIONS = text(
    "INSERT INTO notifications (id, user_id, type, title, body, data, dedupe_key) "
    "SELECT i, u, t, ti, b, d::jsonb, k FROM unnest("
    "CAST(:ids AS uuid[]), CAST(:users AS uuid[]), CAST(:types AS text[]), "
    "CAST(:titles AS text[]), CAST(:bodies AS text[]), CAST(:data AS text[]), "
    "CAST(:keys AS text[])) AS x(i, u, t, ti, b, d, k) "
    "ON CONFLICT ON CONSTRAINT uq_notifications_user_dedupe DO NOTHING "
    "RETURNING id, user_id"
)
_INSERT_DELIVERIES = text(
    "INSERT INTO notification_deliveries (notification_id, channel, status, sent_at, detail) "
    "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:channels AS text[]), "
    "CAST(:statuses AS text[]), CAST(:sent AS timestamptz[]), CAST(:details AS text[]))"
)
_INSERT_OUTBOX = text(
    "INSERT INTO outbox_events (topic, key, payload) "
    "SELECT t, k, p::jsonb FROM unnest(CAST(:topics AS text[]), CAST(:keys AS text[]), "
    "CAST(:payloads AS text[])) AS x(t, k, p)"
)
# The `= ANY(:ids)` repeats the join's ids as an index condition: without it the planner,
# which cannot see into `unnest`, scanned every pending row of the channel once per chunk
# row (a nested loop: 390 ms a chunk of 100 against 10,000 rows, 5 ms with it).
_MARK_DELIVERIES = text(
    "UPDATE notification_deliveries d SET status = x.s, detail = x.detail, "
    "sent_at = x.sent, attempts = d.attempts + 1 "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:details AS text[]), "
    "CAST(:sent AS timestamptz[])) AS x(i, s, detail, sent) "
    "WHERE d.notification_id = ANY(CAST(:ids AS uuid[])) AND d.notification_id = x.i "
    "AND d.channel = :channel AND d.status = 'pending'"
)

# The delivery path's reads take their ids as one array (`= ANY(:ids)`): an `IN` of N ids
# built N bind parameters per call (a share of the delivery's CPU; docs/performance.md).
_PENDING_WITH_USER = text(
    "SELECT d.notification_id, d.channel, n.user_id FROM notification_deliveries d "
    "JOIN notifications n ON n.id = d.notification_id "
    "WHERE d.notification_id = ANY(CAST(:ids AS uuid[])) AND d.status = 'pending' "
    "ORDER BY d.notification_id, d.channel"
)
_LOCK_PENDING = text(
    "SELECT notification_id FROM notification_deliveries "
    "WHERE notification_id = ANY(CAST(:ids AS uuid[])) AND channel = :channel "
    "AND status = 'pending' ORDER BY notification_id FOR UPDATE"
)


def _any_id(column: Any, ids: Sequence[uuid.UUID]) -> ColumnElement[bool]:
    """`column = ANY(:ids)`, the ids bound as one uuid[]."""
    return column == any_(  # type: ignore[no-any-return]
        bindparam(None, list(ids), type_=ARRAY(UUID(as_uuid=True)))
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def insert_notifications(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Insert; rows whose (user_id, dedupe_key) exists are skipped. Returns (id, user_id) of
    the new ones."""
    if not rows:
        return []
    params = {
        "ids": [r["id"] for r in rows],
        "users": [r["user_id"] for r in rows],
        "types": [r["type"] for r in rows],
        "titles": [r["title"] for r in rows],
        "bodies": [r["body"] for r in rows],
        "data": [_json(r["data"]) for r in rows],
        "keys": [r["dedupe_key"] for r in rows],
    }
    return [(r[0], r[1]) for r in (await session.execute(_INSERT_NOTIFICATIONS, params)).all()]


async def insert_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(
            _INSERT_DELIVERIES,
            {
                "ids": [r["notification_id"] for r in rows],
                "channels": [r["channel"] for r in rows],
                "statuses": [r["status"] for r in rows],
                "sent": [r["sent_at"] for r in rows],
                "details": [r["detail"] for r in rows],
            },
        )


async def insert_outbox(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Outbox events ({topic, key, payload}) in one statement, in the caller's transaction."""
    if rows:
        await session.execute(
            _INSERT_OUTBOX,
            {
                "topics": [r["topic"] for r in rows],
                "keys": [r["key"] for r in rows],
                "payloads": [_json(r["payload"]) for r in rows],
            },
        )


async def mark_deliveries(
    session: AsyncSession,
    *,
    channel: str,
    rows: Sequence[tuple[uuid.UUID, str, str | None, dt.datetime | None]],
) -> None:
    """(notification id, status, detail, sent_at) for rows of `channel` this transaction has
    locked pending (`pending_delivery_keys`), attempts + 1: one statement for a chunk."""
    if rows:
        await session.execute(
            _MARK_DELIVERIES,
            {
                "channel": channel,
                "ids": [r[0] for r in rows],
                "statuses": [r[1] for r in rows],
                "details": [r[2] for r in rows],
                "sent": [r[3] for r in rows],
            },
        )


async def pending_delivery_ids(
    session: AsyncSession, *, notification_ids: Sequence[uuid.UUID], channel: str
) -> list[uuid.UUID]:
    """The notifications among these still pending on `channel`, their delivery rows locked
    for the transaction in key order (two batches never deadlock), skipping none: a
    concurrent attempt waits, then sees them sent."""
    if not notification_ids:
        return []
    result = await session.execute(
        _LOCK_PENDING, {"ids": list(notification_ids), "channel": channel}
    )
    return [r[0] for r in result.all()]


async def notifications_by_id(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Notification]:
    if not ids:
        return {}
    q = select(Notification).where(_any_id(Notification.id, ids))
    return {n.id: n for n in (await session.scalars(q)).all()}


async def pending_with_user(
    session: AsyncSession, *, notification_ids: Sequence[uuid.UUID]
) -> list[tuple[uuid.UUID, str, uuid.UUID]]:
    """(notification id, channel, its user) of every pending delivery of these notifications,
    in key order, unlocked (the delivery plan: each send locks its rows again)."""
    if not notification_ids:
        return []
    result = await session.execute(_PENDING_WITH_USER, {"ids": list(notification_ids)})
    return [(r[0], r[1], r[2]) for r in result.all()]


async def pending_deliveries(
    session: AsyncSession, *, notification_ids: Sequence[uuid.UUID], channel: str | None
) -> list[NotificationDelivery]:
    """The pending delivery rows of these notifications (on `channel`, or all), locked for
    the transaction when `channel` is given, in key order (two batches never deadlock)."""
    if not notification_ids:
        return []
    q = select(NotificationDelivery).where(
        _any_id(NotificationDelivery.notification_id, notification_ids),
        NotificationDelivery.status == "pending",
    )
    if channel is not None:
        q = q.where(NotificationDelivery.channel == channel).with_for_update()
    q = q.order_by(NotificationDelivery.notification_id, NotificationDelivery.channel)
    return list((await session.scalars(q)).all())


async def settings_for(
    session: AsyncSession, *, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, NotificationSettings]:
    if not user_ids:
        return {}
    q = select(NotificationSettings).where(_any_id(NotificationSettings.user_id, user_ids))
    return {s.user_id: s for s in (await session.scalars(q)).all()}


async def devices_for(
    session: AsyncSession, *, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[PushDevice]]:
    out: dict[uuid.UUID, list[PushDevice]] = {}
    if not user_ids:
        return out
    q = (
        select(PushDevice)
        .where(_any_id(PushDevice.user_id, user_ids))
        .order_by(PushDevice.created_at)
    )
    for d in (await session.scalars(q)).all():
        out.setdefault(d.user_id, []).append(d)
    return out


async def notification(session: AsyncSession, notification_id: uuid.UUID) -> Notification | None:
    return await session.get(Notification, notification_id)


async def list_notifications(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    unread_only: bool,
    limit: int,
) -> list[Notification]:
    q = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        q = q.where(Notification.read_at.is_(None))
    if before is not None:
        at, nid = before
        q = q.where(
            or_(
                Notification.created_at < at,
                and_(Notification.created_at == at, Notification.id < nid),
            )
        )
    q = q.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    return list((await session.scalars(q)).all())


async def unread_count(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    n = await session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    )
    return int(n or 0)


async def mark_read(
    session: AsyncSession, *, user_id: uuid.UUID, ids: Sequence[uuid.UUID] | None
) -> int:
    stmt = (
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(list(ids)))
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def preferences(
    session: AsyncSession, *, user_ids: Sequence[uuid.UUID]
) -> list[NotificationPreference]:
    if not user_ids:
        return []
    q = select(NotificationPreference).where(NotificationPreference.user_id.in_(list(user_ids)))
    return list((await session.scalars(q)).all())


async def opted_in(
    session: AsyncSession, *, type_: str, after: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    """Users with any channel of `type_` turned on, in id order from `after` (a page)."""
    q = (
        select(NotificationPreference.user_id)
        .where(NotificationPreference.type == type_, NotificationPreference.enabled.is_(True))
        .group_by(NotificationPreference.user_id)
        .order_by(NotificationPreference.user_id)
        .limit(limit)
    )
    if after is not None:
        q = q.where(NotificationPreference.user_id > after)
    return list((await session.scalars(q)).all())


async def upsert_preferences(
    session: AsyncSession, *, user_id: uuid.UUID, values: Sequence[tuple[str, str, bool]]
) -> None:
    if not values:
        return
    stmt = insert(NotificationPreference).values(
        [{"user_id": user_id, "type": t, "channel": c, "enabled": e} for t, c, e in values]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id", "type", "channel"], set_={"enabled": stmt.excluded.enabled}
    )
    await session.execute(stmt)


async def settings(session: AsyncSession, *, user_id: uuid.UUID) -> NotificationSettings | None:
    return await session.get(NotificationSettings, user_id, populate_existing=True)


async def upsert_settings(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    time_zone: str,
    quiet_start: dt.time | None,
    quiet_end: dt.time | None,
) -> None:
    stmt = insert(NotificationSettings).values(
        user_id=user_id, time_zone=time_zone, quiet_start=quiet_start, quiet_end=quiet_end
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id"],
        set_={"time_zone": time_zone, "quiet_start": quiet_start, "quiet_end": quiet_end},
    )
    await session.execute(stmt)


async def delivery(
    session: AsyncSession, *, notification_id: uuid.UUID, channel: str, lock: bool = False
) -> NotificationDelivery | None:
    q = select(NotificationDelivery).where(
        NotificationDelivery.notification_id == notification_id,
        NotificationDelivery.channel == channel,
    )
    if lock:
        q = q.with_for_update()
    return (await session.scalars(q)).first()


async def deliveries(
    session: AsyncSession, *, notification_id: uuid.UUID
) -> list[NotificationDelivery]:
    q = select(NotificationDelivery).where(NotificationDelivery.notification_id == notification_id)
    return list((await session.scalars(q)).all())


async def devices(session: AsyncSession, *, user_id: uuid.UUID) -> list[PushDevice]:
    q = select(PushDevice).where(PushDevice.user_id == user_id).order_by(PushDevice.created_at)
    return list((await session.scalars(q)).all())


async def upsert_device(
    session: AsyncSession, *, user_id: uuid.UUID, platform: str, token: str
) -> PushDevice:
    """A token belongs to the device's current user: registering it again moves it."""
    base = insert(PushDevice).values(user_id=user_id, platform=platform, token=token)
    stmt = base.on_conflict_do_update(
        constraint="uq_notification_devices_token", set_={"user_id": user_id}
    ).returning(PushDevice)
    row: PushDevice = (
        await session.scalars(stmt, execution_options={"populate_existing": True})
    ).one()
    return row


async def delete_device(session: AsyncSession, *, user_id: uuid.UUID, device_id: uuid.UUID) -> bool:
    row = await session.get(PushDevice, device_id)
    if row is None or row.user_id != user_id:
        return False
    await session.delete(row)
    return True


def add_sandbox_push(session: AsyncSession, row: SandboxPush) -> None:
    session.add(row)


async def sandbox_pushes(session: AsyncSession, *, collapse_id: str) -> list[SandboxPush]:
    q = select(SandboxPush).where(SandboxPush.collapse_id == collapse_id)
    return list((await session.scalars(q)).all())


def add_alert(session: AsyncSession, row: PriceAlert) -> None:
    session.add(row)


async def alerts(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[PriceAlert]:
    q = select(PriceAlert).where(PriceAlert.user_id == user_id)
    if before is not None:
        at, aid = before
        q = q.where(
            or_(PriceAlert.created_at < at, and_(PriceAlert.created_at == at, PriceAlert.id < aid))
        )
    q = q.order_by(PriceAlert.created_at.desc(), PriceAlert.id.desc()).limit(limit)
    return list((await session.scalars(q)).all())


async def alert(session: AsyncSession, alert_id: uuid.UUID) -> PriceAlert | None:
    return await session.get(PriceAlert, alert_id)


async def count_active_alerts(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    n = await session.scalar(
        select(func.count())
        .select_from(PriceAlert)
        .where(PriceAlert.user_id == user_id, PriceAlert.status == "active")
    )
    return int(n or 0)


async def trigger_alerts(
    session: AsyncSession, *, ticker: str, low: int, high: int
) -> list[PriceAlert]:
    """Fire, once, the active alerts of `ticker` that trades between low and high crossed:
    `above p` when high >= p, `below p` when low <= p."""
    stmt = (
        update(PriceAlert)
        .where(
            PriceAlert.ticker == ticker,
            PriceAlert.status == "active",
            or_(
                and_(PriceAlert.direction == "above", PriceAlert.price <= high),
                and_(PriceAlert.direction == "below", PriceAlert.price >= low),
            ),
        )
        .values(status="triggered", triggered_at=utcnow())
        .returning(PriceAlert)
    )
    return list((await session.scalars(stmt)).all())
