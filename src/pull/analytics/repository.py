"""All PostgreSQL SQL of the analytics module: reading the outbox, the client-event inbox and
the reader's cursor. (ClickHouse SQL lives in warehouse.py.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pull.analytics.models import InboxMessage, IngestCursor
from pull.kit.db import utcnow

# pg_try_advisory_xact_lock keys: one ingester at a time per source, across processes.
LOCK_OUTBOX = 0x5055_4C4C_0001
LOCK_INBOX = 0x5055_4C4C_0002


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    payload: dict[str, Any]
    created_at: dt.datetime


@dataclass(frozen=True)
class InboxRow:
    id: int
    message_id: str
    kind: str
    payload: dict[str, Any]
    received_at: dt.datetime


async def try_lock(session: AsyncSession, key: int) -> bool:
    got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key})
    return bool(got)


async def cursor(session: AsyncSession, name: str) -> int:
    pos = await session.scalar(
        text("SELECT position FROM analytics_cursors WHERE name = :n"), {"n": name}
    )
    return int(pos) if pos is not None else 0


async def set_cursor(session: AsyncSession, name: str, position: int) -> None:
    stmt = insert(IngestCursor).values(name=name, position=position, updated_at=utcnow())
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[IngestCursor.name],
            set_={"position": stmt.excluded.position, "updated_at": stmt.excluded.updated_at},
        )
    )


_OUTBOX_COLS = "id, topic, payload, created_at"


async def outbox_between(session: AsyncSession, low: int, high: int) -> list[OutboxRow]:
    """Outbox rows with low < id <= high (committed ones: our snapshot sees no others)."""
    rows = await session.execute(
        text(
            f"SELECT {_OUTBOX_COLS} FROM outbox_events "  # noqa: S608 - constant columns
            "WHERE id > :low AND id <= :high ORDER BY id"
        ),
        {"low": low, "high": high},
    )
    return [OutboxRow(int(r[0]), r[1], r[2], r[3]) for r in rows]


async def outbox_after(session: AsyncSession, low: int, limit: int) -> list[OutboxRow]:
    rows = await session.execute(
        text(
            f"SELECT {_OUTBOX_COLS} FROM outbox_events "  # noqa: S608 - constant columns
            "WHERE id > :low ORDER BY id LIMIT :lim"
        ),
        {"low": low, "lim": limit},
    )
    return [OutboxRow(int(r[0]), r[1], r[2], r[3]) for r in rows]


async def add_inbox(session: AsyncSession, messages: Sequence[dict[str, Any]]) -> int:
    """Insert messages ({message_id, kind, payload}); a known message_id is skipped.
    Returns how many were new."""
    if not messages:
        return 0
    stmt = (
        insert(InboxMessage)
        .values(list(messages))
        .on_conflict_do_nothing(index_elements=[InboxMessage.message_id])
        .returning(InboxMessage.id)
    )
    result = await session.execute(stmt)
    return len(result.all())


async def claim_inbox(session: AsyncSession, limit: int) -> list[InboxRow]:
    rows = await session.execute(
        text(
            "SELECT id, message_id, kind, payload, received_at FROM analytics_inbox "
            "WHERE ingested_at IS NULL ORDER BY id LIMIT :lim FOR UPDATE SKIP LOCKED"
        ),
        {"lim": limit},
    )
    return [InboxRow(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


async def mark_inbox(session: AsyncSession, ids: Sequence[int], at: dt.datetime) -> None:
    if ids:
        await session.execute(
            text("UPDATE analytics_inbox SET ingested_at = :at WHERE id = ANY(:ids)"),
            {"at": at, "ids": list(ids)},
        )


async def reset_inbox(session: AsyncSession) -> int:
    """Mark every kept client event for ingest again (a backfill)."""
    result = await session.execute(
        text("UPDATE analytics_inbox SET ingested_at = NULL WHERE ingested_at IS NOT NULL")
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def prune_inbox(session: AsyncSession, before: dt.datetime) -> int:
    result = await session.execute(
        text("DELETE FROM analytics_inbox WHERE ingested_at < :before"), {"before": before}
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def inbox_pending(session: AsyncSession) -> int:
    n = await session.scalar(text("SELECT count(*) FROM analytics_inbox WHERE ingested_at IS NULL"))
    return int(n or 0)


async def outbox_max_id(session: AsyncSession) -> int:
    n = await session.scalar(text("SELECT coalesce(max(id), 0) FROM outbox_events"))
    return int(n or 0)
