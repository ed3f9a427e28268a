"""Delivering notifications on a channel, at most once per (notification, channel).

A delivery row is locked while its channel sends and marked sent in the same transaction:
a concurrent or repeated attempt sees `sent` and does nothing. Email through the outbound
table and the push sandbox commit with that mark (exactly once); a real provider that
succeeds just before a crash may see one retry, which the collapse id (push) or the Matrix
transaction id (the alerts room) turn into the same message, not a second one.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import service as identity
from pull.identity.mailer import Email, EmailSender
from pull.identity.schemas import UserRead
from pull.kit.db import utcnow
from pull.notifications import repository as repo
from pull.notifications.catalog import INTERRUPTING
from pull.notifications.models import Notification, PushDevice
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


async def plan_many(
    *, session: AsyncSession, notification_ids: Sequence[uuid.UUID], now: dt.datetime
) -> list[tuple[str, int, list[uuid.UUID]]]:
    """The pending channels of these notifications grouped by (channel, whole seconds to
    wait): quiet hours hold push and Matrix until they end in each customer's zone."""
    pending = await repo.pending_with_user(session, notification_ids=notification_ids)
    if not pending:
        return []
    users = list({user_id for _, _, user_id in pending})
    quiet = await repo.settings_for(session, user_ids=users)
    holds: dict[uuid.UUID, int] = {}
    for user_id in users:
        st = quiet.get(user_id)
        holds[user_id] = (
            0
            if st is None
            else math.ceil(
                seconds_until_allowed(
                    now, time_zone=st.time_zone, start=st.quiet_start, end=st.quiet_end
                )
            )
        )
    groups: dict[tuple[str, int], list[uuid.UUID]] = {}
    for nid, channel, user_id in pending:
        wait = holds[user_id] if channel in INTERRUPTING else 0
        groups.setdefault((channel, wait), []).append(nid)
    return [(c, w, ids) for (c, w), ids in sorted(groups.items())]


@dataclass
class BatchResult:
    """Per notification: its delivery's status now; `errors`: the ones whose send raised
    (left pending, to be retried)."""

    statuses: dict[uuid.UUID, str] = field(default_factory=dict)
    errors: dict[uuid.UUID, str] = field(default_factory=dict)


@dataclass
class _Recipients:
    users: dict[uuid.UUID, UserRead] = field(default_factory=dict)
    devices: dict[uuid.UUID, list[PushDevice]] = field(default_factory=dict)


async def deliver_many(
    *,
    session: AsyncSession,
    notification_ids: Sequence[uuid.UUID],
    channel: str,
    senders: Senders,
) -> BatchResult:
    """Send `channel` for each of these notifications still pending on it, in one transaction.

    The pending rows are locked, each sent and marked in this transaction, so a concurrent or
    repeated attempt skips them. A send that raises leaves its row pending with the error
    (the others go on); what it changed before raising (a dead token removed, an alerts room
    created) is true and kept. Set-based: one locking read, one read each of the
    notifications and their recipients (users, devices), the e-mails of the chunk in one
    `send_many` (one INSERT in the sandbox) and every row's mark in one UPDATE."""
    out = BatchResult()
    ids = await repo.pending_delivery_ids(
        session, notification_ids=notification_ids, channel=channel
    )
    notes = await repo.notifications_by_id(session, ids)
    user_ids = list({n.user_id for n in notes.values()})
    who = _Recipients()
    if channel == "email":
        who.users = await identity.get_users(session=session, user_ids=user_ids)
    elif channel == "push":
        who.devices = await repo.devices_for(session, user_ids=user_ids)
    now = utcnow()
    marks: list[tuple[uuid.UUID, str, str | None, dt.datetime | None]] = []
    if channel == "email":
        sent = await _send_emails(session, [notes[i] for i in ids], senders, who)
    for nid in ids:
        try:
            if channel == "email":
                result = sent[nid]
                if isinstance(result, Exception):
                    raise result
                detail = result
            else:
                detail = await _send(session, notes[nid], channel, senders, who)
        except PushRejected as exc:
            marks.append((nid, "failed", str(exc)[:500], None))
        except Exception as exc:
            log.warning(
                "notification send failed",
                extra={"channel": channel, "error": type(exc).__name__},
            )
            error = f"{type(exc).__name__}: {exc}"[:500]
            marks.append((nid, "pending", error, None))
            out.errors[nid] = error
        else:
            if detail is None:
                marks.append((nid, "skipped", _skip_reason(channel), None))
            else:
                marks.append((nid, "sent", detail[:500], now))
    await session.flush()  # what the senders changed through the ORM (dead tokens) first
    await repo.mark_deliveries(session, channel=channel, rows=marks)
    out.statuses = {nid: status for nid, status, _, _ in marks}
    return out


async def _send_emails(
    session: AsyncSession, notes: Sequence[Notification], senders: Senders, who: _Recipients
) -> dict[uuid.UUID, str | Exception | None]:
    """Per notification: "email queued", None (no verified address) or the send's error."""
    out: dict[uuid.UUID, str | Exception | None] = {}
    batch: list[tuple[uuid.UUID, Email]] = []
    for note in notes:
        user = who.users.get(note.user_id)
        if user is None or not user.email_verified:
            out[note.id] = None
            continue
        batch.append((note.id, _email(note, user.email, senders.app_url)))
    results = await senders.email.send_many(session=session, emails=[e for _, e in batch])
    for (nid, _), error in zip(batch, results, strict=True):
        out[nid] = error if error is not None else "email queued"
    return out


def _email(note: Notification, to: str, app_url: str) -> Email:
    return Email(
        to=to,
        subject=note.title,
        body=f"{note.body}\n\n{app_url}/notifications\n\n"
        "You can choose what PULL emails you about in Settings > Notifications.",
        kind=f"notification.{note.type}",
    )


async def deliver(
    *, session: AsyncSession, notification_id: uuid.UUID, channel: str, senders: Senders
) -> str:
    """Send one notification on `channel` unless already done; returns the delivery's status
    ("missing" when it has no such channel)."""
    result = await deliver_many(
        session=session, notification_ids=[notification_id], channel=channel, senders=senders
    )
    if notification_id in result.statuses:
        return result.statuses[notification_id]
    row = await repo.delivery(session, notification_id=notification_id, channel=channel)
    return "missing" if row is None else row.status


def _skip_reason(channel: str) -> str:
    return {
        "email": "no verified email address",
        "push": "no registered device",
        "matrix": "no Matrix account",
    }.get(channel, "not deliverable")


async def _send(
    session: AsyncSession, note: Notification, channel: str, senders: Senders, who: _Recipients
) -> str | None:
    """Returns a detail when sent, None when there is nothing to send to."""
    if channel == "email":
        user = who.users.get(note.user_id)
        if user is None or not user.email_verified:
            return None
        await senders.email.send(session=session, email=_email(note, user.email, senders.app_url))
        return "email queued"
    if channel == "push":
        sent = []
        for device in list(who.devices.get(note.user_id, [])):
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
                who.devices[note.user_id].remove(device)
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


async def mark_failed_many(
    *, session: AsyncSession, notification_ids: Sequence[uuid.UUID], channel: str, reason: str
) -> int:
    """The ones still pending on `channel` end `failed` (their retries ran out)."""
    rows = await repo.pending_deliveries(
        session, notification_ids=notification_ids, channel=channel
    )
    for row in rows:
        row.status, row.detail = "failed", reason[:500]
    await session.flush()
    return len(rows)
