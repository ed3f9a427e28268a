"""Push an event to one user's live stream (`/api/v1/stream`), from any module.

Callers are post-commit code (outbox handlers, or right after a commit): the event is
appended to the user stream and every API process delivers it to that user's connections.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from pull.kit.streams import publish_user, publish_users


async def publish_user_event(
    redis: Redis,
    *,
    user_id: uuid.UUID,
    type: str,
    data: dict[str, Any],
    event_id: str | None = None,
) -> None:
    """Deliver `{type, data}` to `user_id`'s connections. `event_id` (default: new) makes a
    retried call a no-op for a while (see pull.kit.streams.xadd_once)."""
    event = {
        "eid": event_id or uuid.uuid4().hex,
        "type": type,
        "data": data,
        "ts": int(time.time() * 1000),
    }
    await publish_user(redis, str(user_id), event)


@dataclass(frozen=True)
class UserEvent:
    user_id: uuid.UUID
    type: str
    data: dict[str, Any]
    event_id: str


async def publish_user_events(redis: Redis, events: Sequence[UserEvent]) -> None:
    """Many `publish_user_event`s in one Redis round trip (one pipeline); each event id is
    still appended at most once, within the pipeline and across calls."""
    if not events:
        return
    ts = int(time.time() * 1000)
    await publish_users(
        redis,
        [
            (str(e.user_id), {"eid": e.event_id, "type": e.type, "data": e.data, "ts": ts})
            for e in events
        ],
    )
