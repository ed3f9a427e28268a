"""Capture: outbox events and client events reach ClickHouse once each, without PII."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.analytics import chschema, warehouse
from pull.analytics.client import Warehouse
from pull.analytics.ingest import Ingestor
from pull.kit.outbox import emit


async def _emit(maker: async_sessionmaker[AsyncSession], n: int, topic: str = "test.thing") -> None:
    async with maker() as s, s.begin():
        for i in range(n):
            emit(s, topic=topic, key=str(i), payload={"i": i, "user_id": str(uuid.uuid4())})


def _count(wh: Warehouse, where: str = "1") -> int:
    return int(wh.rows(f"SELECT count() FROM {wh.database}.events FINAL WHERE {where}")[0][0])


async def test_every_outbox_event_lands_once(
    sessionmaker: async_sessionmaker[AsyncSession], wh: Warehouse, ingestor: Ingestor
) -> None:
    await _emit(sessionmaker, 2500)
    result = await ingestor.drain()
    assert result.outbox == 2500
    assert _count(wh, "event = 'test.thing'") == 2500
    # nothing new: another pass sends nothing
    assert (await ingestor.drain()).total == 0


async def test_a_replayed_batch_changes_nothing(
    sessionmaker: async_sessionmaker[AsyncSession], wh: Warehouse
) -> None:
    """A crash after the ClickHouse insert and before the cursor commit sends the batch again;
    a second ingester (or a restart) starts from the cursor: the counts stay the same."""
    await _emit(sessionmaker, 300)
    await _emit(sessionmaker, 5, topic="identity.user_registered")
    first = Ingestor(sessionmaker, wh, batch_size=100)
    await first.drain()
    before = {
        "all": _count(wh),
        "signups": _count(wh, "event = 'signed_up'"),
    }
    assert before["signups"] == 5
    async with sessionmaker() as s, s.begin():
        await s.execute(text("UPDATE analytics_cursors SET position = 0"))
    replay = Ingestor(sessionmaker, wh, batch_size=100)
    assert (await replay.drain()).outbox == 305  # every row was sent again...
    assert warehouse.count_events(wh, final=False) > before["all"]  # ...and stored twice
    assert {"all": _count(wh), "signups": _count(wh, "event = 'signed_up'")} == before


async def _cursor_and_top(maker: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with maker() as s:
        pos = await s.scalar(text("SELECT position FROM analytics_cursors WHERE name='outbox'"))
        top = await s.scalar(text("SELECT max(id) FROM outbox_events"))
    return int(pos or 0), int(top or 0)


async def test_a_gap_waits_for_a_late_commit(
    sessionmaker: async_sessionmaker[AsyncSession], wh: Warehouse
) -> None:
    """An outbox id taken by a transaction still open is not skipped: its row is sent when it
    commits, even though later ids were sent before; the cursor waits below it meanwhile. An
    id whose transaction rolled back is given up once ANALYTICS_GAP_SECONDS have passed."""
    patient = Ingestor(sessionmaker, wh, batch_size=1000, gap_seconds=600)
    async with sessionmaker() as slow:
        await slow.begin()
        emit(slow, topic="test.late", key="x", payload={})
        await slow.flush()  # takes an id now, commits later
        await _emit(sessionmaker, 3)
        await patient.ingest_outbox()
        assert _count(wh, "event = 'test.thing'") == 3
        pos, top = await _cursor_and_top(sessionmaker)
        assert pos < top - 3  # below the open transaction's id
        await slow.commit()
    await patient.ingest_outbox()
    assert _count(wh, "event = 'test.late'") == 1
    assert _count(wh, "event = 'test.thing'") == 3
    pos, top = await _cursor_and_top(sessionmaker)
    assert pos == top

    hasty = Ingestor(sessionmaker, wh, batch_size=1000, gap_seconds=0.5)
    async with sessionmaker() as doomed:
        await doomed.begin()
        emit(doomed, topic="test.never", key="x", payload={})
        await doomed.flush()
        await _emit(sessionmaker, 2)
        await hasty.ingest_outbox()
        await doomed.rollback()
    await asyncio.sleep(0.6)
    await hasty.ingest_outbox()
    pos, top = await _cursor_and_top(sessionmaker)
    assert pos == top and _count(wh, "event = 'test.thing'") == 5
    assert _count(wh, "event = 'test.never'") == 0


async def test_track_identify_and_batch(
    analytics_client: httpx.AsyncClient, user_factory, wh: Warehouse, ingestor: Ingestor
) -> None:
    user = await user_factory()
    c = analytics_client
    r = await c.post(
        "/api/v1/analytics/track",
        json={
            "event": "Market Viewed",
            "anonymousId": "anon-1",
            "messageId": "m-1",
            "properties": {"ticker": "ABC"},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True, "accepted": 1, "duplicates": 0}
    r = await c.post(
        "/api/v1/analytics/identify",
        json={"anonymous_id": "anon-1", "message_id": "m-2", "traits": {"plan": "pro"}},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    batch = {
        "batch": [
            {"type": "track", "event": "Order Ticket Opened", "message_id": "m-3"},
            {"type": "track", "event": "Order Ticket Opened", "message_id": "m-3"},
            {"type": "track", "event": "Market Viewed", "message_id": "m-1"},
            {"type": "identify", "message_id": "m-4"},
        ]
    }
    r = await c.post("/api/v1/analytics/batch", json=batch, headers=user.headers)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2 and r.json()["duplicates"] == 2
    # replaying the whole batch changes nothing
    r = await c.post("/api/v1/analytics/batch", json=batch, headers=user.headers)
    assert r.json()["accepted"] == 0
    await ingestor.drain()
    rows = wh.rows(
        f"SELECT event, source, user_id, anonymous_id FROM {wh.database}.events FINAL "
        "WHERE source IN ('track', 'identify') ORDER BY event_id"
    )
    assert rows == [
        ("Market Viewed", "track", "", "anon-1"),
        ("identify", "identify", str(user.id), "anon-1"),
        ("Order Ticket Opened", "track", str(user.id), ""),
        ("identify", "identify", str(user.id), ""),
    ]
    ident = wh.rows(f"SELECT anonymous_id, user_id FROM {wh.database}.identities FINAL")
    assert ident == [("anon-1", str(user.id))]


async def test_track_rules(analytics_client: httpx.AsyncClient, user_factory) -> None:
    c = analytics_client
    other = await user_factory()
    me = await user_factory()
    cases = [
        ({"event": "x"}, None, 422, "MISSING_IDENTITY"),
        ({"event": "x", "user_id": str(other.id)}, None, 401, "UNAUTHORIZED"),
        ({"event": "x", "user_id": str(other.id)}, me.headers, 403, "USER_MISMATCH"),
        (
            {"event": "x", "anonymous_id": "a", "timestamp": "1970-01-01T00:00:00Z"},
            None,
            422,
            "INVALID_TIMESTAMP",
        ),
        ({"event": "", "anonymous_id": "a"}, None, 422, "VALIDATION_ERROR"),
        (
            {"event": "x", "anonymous_id": "a", "properties": {"big": "x" * 40_000}},
            None,
            422,
            "PROPERTIES_TOO_LARGE",
        ),
    ]
    for body, headers, status, code in cases:
        r = await c.post("/api/v1/analytics/track", json=body, headers=headers or {})
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == code, r.text
    r = await c.post("/api/v1/analytics/batch", json={"batch": [{"type": "page"}]})
    assert r.status_code == 422
    r = await c.post(
        "/api/v1/analytics/batch",
        json={"batch": [{"type": "track", "event": "e", "anonymous_id": "a"}] * 501},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "BATCH_TOO_LARGE"


async def test_no_pii_reaches_clickhouse(
    analytics_client: httpx.AsyncClient,
    user_factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    wh: Warehouse,
    ingestor: Ingestor,
) -> None:
    """Emails, names, phone numbers and addresses sent or stored anywhere on the way stay out
    of every ClickHouse table."""
    email = f"ada.{uuid.uuid4().hex[:6]}@example.com"
    user = await user_factory(email=email)
    r = await analytics_client.patch(
        "/api/auth/me", json={"display_name": "Ada Lovelace"}, headers=user.headers
    )
    secrets = [email, "Ada", "Lovelace", "Analytical Engine", "62701", "5550001111", "555-867-5309"]
    async with sessionmaker() as s, s.begin():
        emit(
            s,
            topic="test.with_pii",
            key="k",
            payload={
                "user_id": str(user.id),
                "email": email,
                "first_name": "Ada",
                "lastName": "Lovelace",
                "address": {"line1": "12 Analytical Engine Way", "postal_code": "62701"},
                "phone": "+15550001111",
                "note": "Ada Lovelace",
                "reason": f"mail {email} or call 555-867-5309",
                "amount": 500,
            },
        )
    r = await analytics_client.post(
        "/api/v1/analytics/batch",
        json={
            "batch": [
                {
                    "type": "identify",
                    "anonymous_id": "anon-x",
                    "traits": {
                        "email": email,
                        "name": "Ada Lovelace",
                        "phone": "+15550001111",
                        "address": "12 Analytical Engine Way",
                        "plan": "pro",
                    },
                },
                {
                    "type": "track",
                    "event": "Support Opened",
                    "anonymous_id": "anon-x",
                    "properties": {
                        "contact": email,
                        "callback": "+1 555 000 1111",
                        "userName": "Ada",
                        "topic": "withdrawal",
                    },
                },
            ]
        },
    )
    assert r.status_code == 200, r.text
    await ingestor.drain()
    assert _count(wh) > 0
    for table in chschema.TABLES:
        dump = json.dumps([list(map(str, row)) for row in warehouse.table_dump(wh, table)])
        for secret in secrets:
            assert secret not in dump, (table, secret)
    props = wh.rows(
        f"SELECT properties FROM {wh.database}.events FINAL WHERE event = 'test.with_pii'"
    )
    assert json.loads(props[0][0]) == {
        "user_id": str(user.id),
        "reason": "mail [redacted] or call [redacted]",
        "amount": 500,
    }


async def test_clickhouse_migrations_are_versioned(wh: Warehouse) -> None:
    assert chschema.migrate(wh) == []  # already at head: nothing to do
    assert chschema.applied_versions(wh) == {m.version for m in chschema.MIGRATIONS}
    assert chschema.head() == max(m.version for m in chschema.MIGRATIONS)
