"""All PostgreSQL SQL of the analytics module: reading the outbox, the client-event inbox and
the reader's cursor. (ClickHouse SQL lives in warehouse.py.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pull.analytics.models import IngestCursor
from pull.kit.db import utcnow

# pg_try_advisory_xact_lock keys: one ingester at a time per source, across processes.
LOCK_OUTBOX = 0x5055_4C4C_0001
LOCK_INBOX = 0x5055_4C4C_0002


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


# The outbox as the ingester hands it to ClickHouse (chschema.OUTBOX_IN_COLUMNS): id, created_at
# in epoch milliseconds (floored, as DateTime64(3) stores it), the topic in hex (so the only
# `"` of a line are its payload's: pii.clean_outbox_tsv reads keys off the whole text) and
# the payload's JSON text, as COPY's text format prints them (TabSeparated).
_OUTBOX_COLS = (
    "id, floor(extract(epoch FROM created_at) * 1000)::bigint, "
    "encode(convert_to(topic, 'UTF8'), 'hex'), payload::text"
)


async def _copy(session: AsyncSession, sql: str) -> bytes:
    """COPY (sql) TO STDOUT on the session's own connection and transaction, through asyncpg:
    one round trip, and no Python object per row (the bytes go to ClickHouse as they are).
    `sql` holds integers formatted here only (COPY takes no bind parameters)."""
    driver = await _driver(session)
    chunks: list[bytes] = []

    async def collect(chunk: bytes) -> None:
        chunks.append(chunk)

    await driver.copy_from_query(sql, output=collect)
    return b"".join(chunks)


async def copy_outbox_after(session: AsyncSession, low: int, limit: int) -> bytes:
    return await _copy(
        session,
        f"SELECT {_OUTBOX_COLS} FROM outbox_events WHERE id > {int(low)} "  # noqa: S608
        f"ORDER BY id LIMIT {int(limit)}",
    )


async def copy_outbox_between(session: AsyncSession, low: int, high: int) -> bytes:
    return await _copy(
        session,
        f"SELECT {_OUTBOX_COLS} FROM outbox_events "  # noqa: S608 - integers only
        f"WHERE id > {int(low)} AND id <= {int(high)} ORDER BY id",
    )


async def copy_outbox_gaps(session: AsyncSession, gaps: Sequence[tuple[int, int]]) -> bytes:
    """The rows committed by now inside the id ranges (low, high inclusive) that were missing
    (late commits into a gap); an index probe per range, not a re-read of the rows around."""
    if not gaps:
        return b""
    ranges = " OR ".join(f"id BETWEEN {int(lo)} AND {int(hi)}" for lo, hi in gaps)
    return await _copy(
        session,
        f"SELECT {_OUTBOX_COLS} FROM outbox_events WHERE {ranges} ORDER BY id",  # noqa: S608
    )


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's own connection and transaction."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def add_inbox(session: AsyncSession, messages: Sequence[dict[str, Any]]) -> int:
    """Insert messages ({message_id, kind, payload}); a known message_id is skipped.
    Returns how many were new. One statement over arrays (SQLAlchemy's compilation of a
    500-row VALUES list was most of a batch request's time)."""
    if not messages:
        return 0
    driver = await _driver(session)
    rows = await driver.fetch(
        "INSERT INTO analytics_inbox (message_id, kind, payload) "
        "SELECT m, k, p::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS u(m, k, p) "
        "ON CONFLICT (message_id) DO NOTHING RETURNING id",
        [m["message_id"] for m in messages],
        [m["kind"] for m in messages],
        [orjson.dumps(m["payload"], default=str).decode() for m in messages],
    )
    return len(rows)


async def copy_claim_inbox(session: AsyncSession, limit: int) -> bytes:
    """Mark up to `limit` pending client events ingested and return them (chschema.
    INBOX_IN_COLUMNS, TabSeparated) in one statement; the mark commits with the caller's
    transaction, after ClickHouse has the rows. Rows another ingester holds are skipped."""
    return await _copy(
        session,
        "WITH c AS (SELECT id FROM analytics_inbox WHERE ingested_at IS NULL ORDER BY id "  # noqa: S608
        f"LIMIT {int(limit)} FOR UPDATE SKIP LOCKED) "
        "UPDATE analytics_inbox AS i SET ingested_at = now() FROM c WHERE i.id = c.id "
        "RETURNING i.id, i.message_id, i.kind, i.payload::text, "
        "floor(extract(epoch FROM i.received_at) * 1000)::bigint",
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
