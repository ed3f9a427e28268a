"""All PostgreSQL SQL of the analytics module: reading the outbox, the client-event inbox and
the reader's cursor. (ClickHouse SQL lives in warehouse.py.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pull.analytics.models import InboxMessage, IngestCursor
from pull.kit.db import utcnow

# pg_try_advisory_xact_lock keys: one ingester at a time per source, across processes.
LOCK_OUTBOX = 0x5055_4C4C_0001
LOCK_INBOX = 0x5055_4C4C_0002


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


class RawOutbox(NamedTuple):
    """An outbox row as the ingester needs it: the payload's JSON text (not decoded by the
    driver) and created_at in epoch milliseconds (floored, as DateTime64(3) stores it)."""

    id: int
    topic: str
    payload_json: str
    ts_ms: int


_RAW_COLS = "id, topic, payload::text, floor(extract(epoch FROM created_at) * 1000)::bigint"


async def _fetch(session: AsyncSession, sql: str, *args: Any) -> list[RawOutbox]:
    """On the session's own connection and transaction, through asyncpg directly: the ingest
    reads thousands of rows a batch, and SQLAlchemy's row objects were a large part of it."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    records = await driver.fetch(sql, *args)
    make = RawOutbox._make
    return [make(r) for r in records]


async def raw_outbox_after(session: AsyncSession, low: int, limit: int) -> list[RawOutbox]:
    return await _fetch(
        session,
        f"SELECT {_RAW_COLS} FROM outbox_events WHERE id > $1 ORDER BY id LIMIT $2",  # noqa: S608
        low,
        limit,
    )


async def raw_outbox_between(session: AsyncSession, low: int, high: int) -> list[RawOutbox]:
    return await _fetch(
        session,
        f"SELECT {_RAW_COLS} FROM outbox_events WHERE id > $1 AND id <= $2 ORDER BY id",  # noqa: S608
        low,
        high,
    )


async def raw_outbox_gaps(
    session: AsyncSession, gaps: Sequence[tuple[int, int]]
) -> list[RawOutbox]:
    """The rows committed by now inside the id ranges (low, high inclusive) that were missing
    (late commits into a gap); an index probe per range, not a re-read of the rows around."""
    if not gaps:
        return []
    return await _fetch(
        session,
        f"SELECT {_RAW_COLS} FROM outbox_events "  # noqa: S608 - constant columns
        "JOIN unnest($1::bigint[], $2::bigint[]) AS g(low, high) "
        "ON id BETWEEN g.low AND g.high ORDER BY id",
        [g[0] for g in gaps],
        [g[1] for g in gaps],
    )


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
