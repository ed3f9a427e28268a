"""Activities of the notification delivery workflow (each its own transaction, idempotent)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from pull.kit.db import session_scope, utcnow
from pull.kit.runtime import worker_runtime
from pull.messaging.service import AlertsRoomSender
from pull.notifications import delivery
from pull.notifications.delivery import Senders
from pull.notifications.push import PushRejected
from pull.notifications.senders import make_senders

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
    notification_id: str


@dataclass
class PlanItem:
    channel: str
    delay_seconds: float


@dataclass
class ChannelInput:
    notification_id: str
    channel: str


@dataclass
class FailedInput:
    notification_id: str
    channel: str
    reason: str


@activity.defn(name="notifications_plan")
async def plan_delivery(inp: PlanInput) -> list[PlanItem]:
    async with session_scope(worker_runtime().sessionmaker) as session:
        items = await delivery.plan(
            session=session, notification_id=uuid.UUID(inp.notification_id), now=utcnow()
        )
    return [PlanItem(channel=c, delay_seconds=d) for c, d in items]


@activity.defn(name="notifications_deliver")
async def deliver_channel(inp: ChannelInput) -> str:
    try:
        async with session_scope(worker_runtime().sessionmaker) as session:
            return await delivery.deliver(
                session=session,
                notification_id=uuid.UUID(inp.notification_id),
                channel=inp.channel,
                senders=senders(),
            )
    except PushRejected as exc:
        raise ApplicationError(str(exc), type="PushRejected", non_retryable=True) from exc


@activity.defn(name="notifications_mark_failed")
async def mark_failed(inp: FailedInput) -> None:
    async with session_scope(worker_runtime().sessionmaker) as session:
        await delivery.mark_failed(
            session=session,
            notification_id=uuid.UUID(inp.notification_id),
            channel=inp.channel,
            reason=inp.reason,
        )


ACTIVITIES: list[Callable[..., Any]] = [plan_delivery, deliver_channel, mark_failed]
