"""Matrix events and PULL rooms as API schemas."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pull.messaging.connection import pull_user_of
from pull.messaging.models import MatrixRoom
from pull.messaging.schemas import MessageRead, RoomRead


def visible(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == "m.room.message"]


def message_read(e: dict[str, Any]) -> MessageRead:
    content = e.get("content") or {}
    redacted = not content or "redacted_because" in (e.get("unsigned") or {})
    return MessageRead(
        event_id=str(e.get("event_id", "")),
        sender=str(e.get("sender", "")),
        user_id=pull_user_of(str(e.get("sender", ""))),
        type=str(e.get("type", "")),
        msgtype=content.get("msgtype"),
        body=None if redacted else content.get("body"),
        redacted=redacted,
        ts=int(e.get("origin_server_ts", 0)),
    )


def room_read(room: MatrixRoom, joined_at: dt.datetime) -> RoomRead:
    return RoomRead(
        id=room.id,
        matrix_room_id=room.matrix_room_id,
        kind=room.kind,
        subject=room.subject,
        name=room.name,
        joined_at=joined_at,
    )
