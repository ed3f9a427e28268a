"""The analytics module's public API: accepting client events, running the ingester, the
ClickHouse schema, and the backfill from PostgreSQL. (Dashboards: dashboards.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.analytics import chschema, warehouse
from pull.analytics import repository as repo
from pull.analytics.client import Warehouse, briefly, run, target_for, warehouse_for
from pull.analytics.errors import AnalyticsUnavailable
from pull.analytics.ingest import Ingestor, OutboxBatch, send_outbox
from pull.analytics.normalize import identity_milestones
from pull.analytics.pii import scrub
from pull.analytics.schemas import IdentifyMessage, TrackMessage, TrackResponse
from pull.config import Settings
from pull.identity import service as identity
from pull.kit.db import utcnow
from pull.kit.errors import Forbidden, Unauthorized, Unprocessable

log = logging.getLogger("pull.analytics")

MAX_PROPERTIES_BYTES = 32_768
RELAY_RECHECK_SECONDS = 5.0
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

__all__ = [
    "IngestRunner",
    "accept_messages",
    "backfill",
    "ingest_process",
    "migrate_clickhouse",
]


# --- client events --------------------------------------------------------------------------


def _check_time(ts: dt.datetime | None, now: dt.datetime) -> str | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    if ts < EARLIEST or ts > now + dt.timedelta(days=1):
        raise Unprocessable(
            "timestamp must be after 2000-01-01 and at most a day ahead",
            code="INVALID_TIMESTAMP",
        )
    return ts.astimezone(dt.UTC).isoformat()


async def accept_messages(
    *,
    session: AsyncSession,
    messages: Sequence[TrackMessage | IdentifyMessage],
    caller_id: uuid.UUID | None,
    max_batch: int,
) -> TrackResponse:
    """Store client messages for ingest (PII removed first); a known message_id is a duplicate.

    A signed-in caller's events are theirs: `user_id`, when given, must be the caller. Without
    a session only `anonymous_id` is accepted.
    """
    if len(messages) > max_batch:
        raise Unprocessable(f"at most {max_batch} messages per batch", code="BATCH_TOO_LARGE")
    now = utcnow()
    rows: dict[str, dict[str, Any]] = {}
    for m in messages:
        if caller_id is not None:
            if m.user_id is not None and m.user_id != str(caller_id):
                raise Forbidden("user_id must be the signed-in user", code="USER_MISMATCH")
            user = str(caller_id)
        elif m.user_id is not None:
            raise Unauthorized("Sign in to send events with a user_id")
        else:
            user = ""
        if not user and not m.anonymous_id:
            raise Unprocessable(
                "user_id (signed in) or anonymous_id is required", code="MISSING_IDENTITY"
            )
        body = m.properties if isinstance(m, TrackMessage) else m.traits
        if len(orjson.dumps(body, default=str)) > MAX_PROPERTIES_BYTES:
            raise Unprocessable(
                f"properties larger than {MAX_PROPERTIES_BYTES} bytes", code="PROPERTIES_TOO_LARGE"
            )
        payload: dict[str, Any] = {
            "user_id": user,
            "anonymous_id": m.anonymous_id or "",
            "timestamp": _check_time(m.timestamp, now),
        }
        if isinstance(m, TrackMessage):
            payload["event"] = m.event
            payload["properties"] = scrub(m.properties)
        else:
            payload["traits"] = scrub(m.traits)
        message_id = m.message_id or str(uuid.uuid4())
        rows.setdefault(message_id, {"message_id": message_id, "kind": m.type, "payload": payload})
    accepted = await repo.add_inbox(session, list(rows.values()))
    return TrackResponse(accepted=accepted, duplicates=len(messages) - accepted)


# --- ClickHouse schema ----------------------------------------------------------------------


def migrate_clickhouse(settings: Settings) -> list[int]:
    """Apply the ClickHouse migrations (`pull migrate`). With chDB and no process owning it,
    the engine is opened and closed again (so the API can open it next); with an owner (the
    API running), the migrations run there."""
    with briefly(settings) as wh:
        return chschema.migrate(wh)


# --- the ingester ---------------------------------------------------------------------------


def ingest_process(settings: Settings) -> Literal["api", "worker", "off"]:
    mode = settings.analytics_ingest
    if mode == "auto":
        return "api" if target_for(settings).embedded else "worker"
    if mode in ("api", "worker"):
        return mode  # type: ignore[return-value]
    return "off"


class IngestRunner:
    """The ingester as a background task of a process (the API's lifespan or the worker).

    ClickHouse is opened inside the task, so a process whose ClickHouse is down (or whose
    chDB directory another process holds) still starts; it retries every poll interval.
    """

    def __init__(self, settings: Settings, maker: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.maker = maker
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="analytics-ingest")

    async def _run(self) -> None:
        delay = self.settings.analytics_poll_seconds
        while not self._stop.is_set():
            try:
                wh = await run(warehouse_for, self.settings)
                own = getattr(wh, "own", None)  # a relay to the process that owns chDB
                if own is not None and not await run(own):
                    # the owner ingests; look again later in case it has gone
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), timeout=RELAY_RECHECK_SECONDS)
                    continue
                ingestor = Ingestor.from_settings(self.maker, wh, self.settings)
                await ingestor.run(self._stop)
                return
            except AnalyticsUnavailable as exc:
                log.warning("analytics store unavailable", extra={"error": exc.message})
            except Exception as exc:
                log.warning("analytics ingester stopped", extra={"error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            delay = min(delay * 2, 60.0)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


# --- backfill -------------------------------------------------------------------------------


@dataclass
class BackfillResult:
    outbox_events: int = 0
    users: int = 0
    client_events: int = 0
    rows_in_clickhouse: int = 0


async def backfill(
    *,
    maker: async_sessionmaker[AsyncSession],
    wh: Warehouse,
    batch_size: int = 20_000,
) -> BackfillResult:
    """Load history from PostgreSQL: every outbox event ever written, every user's sign-up
    and verifications (users from before identity emitted events), and the client events
    still kept. Idempotent: the ids are the live path's, so running it twice, or over data
    already ingested, adds nothing."""
    await warehouse.ensure_schema(wh)
    result = BackfillResult()
    last = 0
    async with maker() as session:
        top = await repo.outbox_max_id(session)
    while last < top:
        async with maker() as session:
            batch = OutboxBatch(
                await repo.copy_outbox_between(session, last, min(last + batch_size, top))
            )
        if batch:
            await run(send_outbox, wh, batch.data)
            result.outbox_events += batch.count
        last = min(last + batch_size, top)
    after: uuid.UUID | None = None
    while True:
        async with maker() as session:
            users = await identity.user_milestones(session=session, after=after, limit=batch_size)
        if not users:
            break
        out = []
        for u in users:
            out.extend(
                identity_milestones(
                    user_id=str(u.id),
                    created_at=u.created_at,
                    email_verified_at=u.email_verified_at,
                    phone_verified_at=u.phone_verified_at,
                )
            )
        await run(warehouse.insert_rows, wh, out, utcnow())
        result.users += len(users)
        after = users[-1].id
    async with maker() as session, session.begin():
        await repo.reset_inbox(session)
    # the outbox cursor stays where it is: the live ingester's rows are the same rows
    ingestor = Ingestor(maker, wh, batch_size=batch_size)
    while True:
        n = await ingestor.ingest_inbox()
        if n == 0:
            break
        result.client_events += n
    result.rows_in_clickhouse = await run(warehouse.count_events, wh)
    return result
