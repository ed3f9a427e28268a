"""Activities of the notification delivery workflow (each its own transactions, idempotent)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from pull.kit.db import session_scope, utcnow
from pull.kit.runtime import worker_runtime
from pull.messaging.alerts import AlertsRoomSender
from pull.notifications import delivery
from pull.notifications.delivery import Senders
from pull.notifications.senders import make_senders

# Notifications sent per transaction: a chunk's rows stay locked while it sends.
CHUNK = 100

_senders: Senders | None = None
_override: Senders | None = None


def set_senders(senders: Senders | None) -> None:
    """Tests point the worker at clients of local fakes."""
    global _override
    _override = senders


def senders() -> Senders:
    global _senders
    if _override is not None:
        return _override
    if _senders is None:
        settings = worker_runtime().settings
        _senders = make_senders(settings, AlertsRoomSender(settings))
    return _senders


@dataclass
class PlanInput:
    notification_ids: list[str]


@dataclass
class PlanGroup:
    channel: str
    delay_seconds: int
    notification_ids: list[str]


@dataclass
class ChannelInput:
    notification_ids: list[str]
    channel: str


@dataclass
class FailedInput:
    notification_ids: list[str]
    channel: str
    reason: str


def _ids(raw: list[str]) -> list[uuid.UUID]:
    return [uuid.UUID(i) for i in raw]


@activity.defn(name="notifications_plan_batch")
async def plan_batch(inp: PlanInput) -> list[PlanGroup]:
    async with session_scope(worker_runtime().sessionmaker) as session:
        groups = await delivery.plan_many(
            session=session, notification_ids=_ids(inp.notification_ids), now=utcnow()
        )
    return [PlanGroup(c, w, [str(i) for i in ids]) for c, w, ids in groups]


@activity.defn(name="notifications_deliver_batch")
async def deliver_batch(inp: ChannelInput) -> int:
    """Sends in chunks of CHUNK (each committed); raises after the last chunk when any send
    failed, so the retry sends only what is still pending. Returns how many were handled."""
    ids = _ids(inp.notification_ids)
    handled = 0
    errors: dict[uuid.UUID, str] = {}
    for i in range(0, len(ids), CHUNK):
        async with session_scope(worker_runtime().sessionmaker) as session:
            result = await delivery.deliver_many(
                session=session,
                notification_ids=ids[i : i + CHUNK],
                channel=inp.channel,
                senders=senders(),
            )
        handled += len(result.statuses) - len(result.errors)
        errors.update(result.errors)
        activity.heartbeat(i + CHUNK)
    if errors:
        first = next(iter(errors.values()))
        raise ApplicationError(
            f"{len(errors)} of {len(ids)} {inp.channel} sends failed; first: {first}",
            type="SendFailed",
        )
    return handled


@activity.defn(name="notifications_mark_failed_batch")
async def mark_failed_batch(inp: FailedInput) -> int:
    async with session_scope(worker_runtime().sessionmaker) as session:
        return await delivery.mark_failed_many(
            session=session,
            notification_ids=_ids(inp.notification_ids),
            channel=inp.channel,
            reason=inp.reason,
        )


ACTIVITIES: list[Callable[..., Any]] = [plan_batch, deliver_batch, mark_failed_batch]
