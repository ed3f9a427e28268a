"""Delivering one notification on one channel, at most once per (notification, channel).

The delivery row is locked while its channel sends and marked sent in the same transaction:
a concurrent or repeated attempt sees `sent` and does nothing. Email through the outbound
table and the push sandbox commit with that mark (exactly once); a real provider that
succeeds just before a crash may see one retry, which the collapse id (push) or the Matrix
transaction id (the alerts room) turn into the same message, not a second one.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import service as identity
from pull.identity.mailer import Email, EmailSender
from pull.kit.db import utcnow
from pull.notifications import repository as repo
from pull.notifications.catalog import INTERRUPTING
from pull.notifications.models import Notification
from pull.notifications.push import PushMessage, PushRejected, PushSender
from pull.notifications.quiet import seconds_until_allowed

log = logging.getLogger("pull.notifications")


class MatrixAlerts(Protocol):
    """Posts into the customer's private "PULL alerts" room (the messaging module)."""

    async def send_alert(
        self, *, session: AsyncSession, user_id: uuid.UUID, txn_id: str, title: str, body: str
    ) -> str | None: ...


@dataclass
class Senders:
    email: EmailSender
    push: dict[str, PushSender]
    matrix: MatrixAlerts | None
    app_url: str


async def plan(
    *, session: AsyncSession, notification_id: uuid.UUID, now: dt.datetime
) -> list[tuple[str, float]]:
    """The pending channels and how long each waits (quiet hours hold push and Matrix)."""
    note = await repo.notification(session, notification_id)
    if note is None:
        return []
    settings = await repo.settings(session, user_id=note.user_id)
    hold = 0.0
    if settings is not None:
        hold = seconds_until_allowed(
            now,
            time_zone=settings.time_zone,
            start=settings.quiet_start,
            end=settings.quiet_end,
        )
    out = []
    for d in await repo.deliveries(session, notification_id=notification_id):
        if d.status == "pending":
            out.append((d.channel, hold if d.channel in INTERRUPTING else 0.0))
    return sorted(out)


async def deliver(
    *, session: AsyncSession, notification_id: uuid.UUID, channel: str, senders: Senders
) -> str:
    """Send on `channel` unless already done; returns the delivery's status."""
    row = await repo.delivery(session, notification_id=notification_id, channel=channel, lock=True)
    if row is None:
        return "missing"
    if row.status != "pending":
        return row.status
    note = await repo.notification(session, notification_id)
    assert note is not None
    row.attempts += 1
    detail = await _send(session, note, channel, senders)
    if detail is None:
        row.status, row.detail = "skipped", _skip_reason(channel)
    else:
        row.status, row.detail, row.sent_at = "sent", detail[:500], utcnow()
    await session.flush()
    return row.status


def _skip_reason(channel: str) -> str:
    return {
        "email": "no verified email address",
        "push": "no registered device",
        "matrix": "no Matrix account",
    }.get(channel, "not deliverable")


async def _send(
    session: AsyncSession, note: Notification, channel: str, senders: Senders
) -> str | None:
    """Returns a detail when sent, None when there is nothing to send to."""
    if channel == "email":
        user = await identity.get_user(session=session, user_id=note.user_id)
        if user is None or not user.email_verified:
            return None
        await senders.email.send(
            session=session,
            email=Email(
                to=user.email,
                subject=note.title,
                body=f"{note.body}\n\n{senders.app_url}/notifications\n\n"
                "You can choose what PULL emails you about in Settings > Notifications.",
                kind=f"notification.{note.type}",
            ),
        )
        return "email queued"
    if channel == "push":
        devices = await repo.devices(session, user_id=note.user_id)
        sent = []
        for device in devices:
            sender = senders.push.get(device.platform)
            if sender is None:
                continue
            message = PushMessage(
                token=device.token,
                title=note.title,
                body=note.body,
                collapse_id=str(note.id),
                data={"notification_id": str(note.id), "type": note.type},
            )
            try:
                sent.append(await sender.send(session=session, message=message))
            except PushRejected as exc:  # a dead token: forget it, keep the others
                log.info("push token rejected", extra={"platform": device.platform})
                await session.delete(device)
                sent.append(f"rejected: {exc}")
        return ", ".join(sent) if sent else None
    if channel == "matrix":
        if senders.matrix is None:
            return None
        return await senders.matrix.send_alert(
            session=session,
            user_id=note.user_id,
            txn_id=f"pull-notification-{note.id}",
            title=note.title,
            body=note.body,
        )
    raise ValueError(f"unknown channel {channel}")


async def mark_failed(
    *, session: AsyncSession, notification_id: uuid.UUID, channel: str, reason: str
) -> None:
    row = await repo.delivery(session, notification_id=notification_id, channel=channel, lock=True)
    if row is not None and row.status == "pending":
        row.status, row.detail = "failed", reason[:500]
