"""The ingest hot path: outbox rows from PostgreSQL's COPY to ClickHouse's views, the PII check
on the JSON text of a whole batch, the gaps of the outbox cursor, and the insert's column types."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.analytics.client import Warehouse
from pull.analytics.ingest import Gap, Ingestor, fill_gaps
from pull.analytics.normalize import COLUMNS, TYPES, EventColumns, epoch_ms, from_outbox
from pull.analytics.pii import clean_outbox_tsv, is_clean_json, scrub
from pull.kit.outbox import emit

keys = st.sampled_from(
    ["i", "ticker", "status", "amount", "user_id", "side", "email", "phone", "firstName",
     "note", "order_id", "fills", "nested", "ip", "tier", "x-y", "camelCase"]
) | st.text(max_size=8)  # fmt: skip
strings = st.sampled_from(
    ["ok", "KX-1", "a@b.co", "+1 555 123 4567", "555-123-4567", "2026-12-02T04:00:00+00:00",
     str(uuid.UUID(int=7)), "(555) 123-4567", "tab\there", 'quote"d', "é"]
) | st.text(max_size=12)  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | strings,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=10,
)
payloads = st.dictionaries(keys, json_values, max_size=6)


def _pg_text(value: Any) -> str:
    """What PostgreSQL's jsonb::text prints (', ' and ': ', non-ASCII as is)."""
    return json.dumps(value, ensure_ascii=False)


@given(payloads)
def test_a_clean_text_is_one_the_scrub_leaves_alone(payload: dict[str, Any]) -> None:
    text = _pg_text(payload)
    if is_clean_json(text):
        assert scrub(payload) == payload


@given(payloads, st.sampled_from(["email", "phone", "lastName", "address", "ssn"]))
def test_a_pii_key_anywhere_is_never_clean(payload: dict[str, Any], key: str) -> None:
    assert not is_clean_json(_pg_text({**payload, key: "x"}))
    assert not is_clean_json(_pg_text({"outer": [{"deep": {key: 1}}], **payload}))


def test_pii_values_are_never_clean() -> None:
    for value in ("jo@example.com", "+15551234567", "call (555) 123-4567", "555.123.4567"):
        assert not is_clean_json(_pg_text({"comment_id": 1, "v": value}))
    assert is_clean_json(_pg_text({"user_id": str(uuid.uuid4()), "at": "2026-12-02T04:00:00Z"}))


def _copy_text(value: str) -> bytes:
    """A field as PostgreSQL's COPY text format prints it."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
        .replace("\r", "\\r").encode()
    )  # fmt: skip


def _tsv(payloads: list[Any]) -> bytes:
    return b"".join(
        b"%d\t%d\t%s\t%s\n" % (i + 1, 1_700_000_000_000 + i, b"74", _copy_text(_pg_text(p)))
        for i, p in enumerate(payloads)
    )


def _stored(line: bytes) -> Any:
    payload = line.split(b"\t", 3)[3]
    text = re.sub(rb"\\(.)", lambda m: {b"t": b"\t", b"n": b"\n", b"r": b"\r"}.get(
        m.group(1), m.group(1)), payload).decode()  # fmt: skip
    return json.loads(text)


@given(st.lists(payloads | json_values, min_size=1, max_size=6))
def test_a_batch_stores_the_scrub_of_every_payload(batch: list[Any]) -> None:
    """The batch check decides for all payloads at once; whatever it decides, each line
    stores exactly the scrub of its payload (ClickHouse's view wraps a non-object kept as it
    was in {"value": ...}; a rewritten one is wrapped already), and the other fields as
    they were."""
    given_lines = _tsv(batch)[:-1].split(b"\n")
    out = clean_outbox_tsv(_tsv(batch))
    lines = out[:-1].split(b"\n")
    assert len(lines) == len(batch)
    for before, line, payload in zip(given_lines, lines, batch, strict=True):
        assert line.rsplit(b"\t", 1)[0] == before.rsplit(b"\t", 1)[0]
        stored = _stored(line)
        if not isinstance(payload, dict) and line == before:
            stored = {"value": stored}
        assert stored == scrub(payload if isinstance(payload, dict) else {"value": payload})


def test_a_clean_batch_is_passed_on_as_it_is() -> None:
    batch = _tsv([{"ticker": "KX-1", "user_id": str(uuid.UUID(int=i)), "n": i} for i in range(50)])
    assert clean_outbox_tsv(batch) is batch
    dirty = _tsv([{"ticker": "KX-1"}, {"email": "x"}, {"note": "call +1 555 123 4567"}])
    assert [_stored(line) for line in clean_outbox_tsv(dirty)[:-1].split(b"\n")] == [
        {"ticker": "KX-1"}, {}, {},
    ]  # fmt: skip


def _trade(i: int) -> dict[str, Any]:
    return {
        "ticker": "KX-1",
        "user_id": str(uuid.UUID(int=i)),
        "side": "no",
        "action": "buy",
        "fills": [
            {"count": 3, "yes_price": 40, "maker_user_id": str(uuid.UUID(int=i + 1)),
             "taker_fee": 2, "maker_fee": 1},
            {"count": 1, "yes_price": 41, "maker_user_id": "", "taker_fee": 0},
        ],
    }  # fmt: skip


EXAMPLES: list[tuple[str, Any]] = [
    ("exchange.trade", _trade(5)),
    ("funding.deposit_settled", {"deposit_id": "d1", "user_id": "u1", "amount": 1234}),
    ("funding.withdrawal_completed", {"withdrawal_id": "w", "user_id": "u", "amount": 9, "fee": 1}),
    ("kyc.tier_changed", {"user_id": "u2", "from": "none", "to": "basic"}),
    ("kyc.approved", {"user_id": "u3", "tier": "standard"}),
    ("identity.user_registered", {"user_id": "u4"}),
    ("identity.email_verified", {"user_id": "u4", "email": "u4@example.com"}),
    ("exchange.market", {"ticker": "KX-1", "status": "open"}),
    ("messaging.sent", {"user_id": "u5", "body": "call me at +1 555 123 4567", "n": [1, 2]}),
    ("odd.list", [1, 2, 3]),
]


EDGES: list[tuple[str, Any]] = [
    ("identity.phone_verified", {"user_id": 42}),
    ("identity.user_registered", {"user_id": 0}),
    ("identity.user_registered", {"user_id": True}),
    ("identity.user_registered", {"user_id": "ada@example.com"}),
    ("funding.deposit_settled", {"deposit_id": 7, "user_id": "u", "amount": "1250"}),
    ("funding.deposit_settled", {"deposit_id": "d2", "amount": 12.5}),
    ("funding.deposit_settled", {"deposit_id": "d3", "amount": " 12"}),
    ("funding.deposit_settled", {"deposit_id": "", "amount": 5}),
    ("funding.withdrawal_completed", {"withdrawal_id": "w2", "amount": True, "fee": "-3"}),
    ("kyc.tier_changed", {"user_id": "u6", "from": "none", "to": None}),
    ("kyc.tier_changed", {"user_id": "u6", "from": "none", "to": "none"}),
    ("kyc.tier_changed", {"user_id": "u7", "from": "none", "to": ""}),
    ("kyc.tier_changed", {"user_id": "u8", "from": "basic", "to": "full"}),
    ("kyc.approved", {"user_id": "u9"}),
    ("exchange.trade", {"user_id": "t", "fills": [1, {"count": 2, "yes_price": 30}, "x"]}),
    ("exchange.trade", {"user_id": "t", "side": "yes", "action": {"k": 1}, "fills": {"a": 1}}),
    ("exchange.trade", {"ticker": 5, "fills": [{"count": "4", "yes_price": 99, "maker_fee": 1}]}),
    (
        "test.text",
        {
            "s": 'tab\there \\ "q" é '
            "\u0665\u0665\u0665-\u0661\u0662\u0663-\u0664\u0665\u0666\u0667",
            "nested": [[[[[[1]]]]]],
        },
    ),
    ("test.scalar", "just text"),
    ("test.scalar", 12),
    ("test.deep", {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}),
]


def _expected(oid: int, topic: str, payload: Any, ts: dt.datetime) -> list[tuple[Any, ...]]:
    batch = EventColumns()
    for row in from_outbox(outbox_id=oid, topic=topic, payload=payload, created_at=ts):
        batch.add_row(row)
    cols = batch.columns(0)
    return [tuple(c[i] for c in cols) for i in range(len(batch))]


async def test_clickhouse_writes_what_the_rules_say(
    sessionmaker: async_sessionmaker[AsyncSession], wh: Warehouse, ingestor: Ingestor
) -> None:
    """Outbox rows through PostgreSQL's COPY, the PII check and ClickHouse's views give the
    rows normalize.from_outbox (the rules, in Python) gives for the same committed rows."""
    async with sessionmaker() as s, s.begin():
        for topic, payload in EXAMPLES + EDGES:
            emit(s, topic=topic, key="k", payload=payload)
    await ingestor.drain()
    async with sessionmaker() as s:
        stored = (await s.execute(
            text("SELECT id, topic, payload, created_at FROM outbox_events ORDER BY id")
        )).all()  # fmt: skip
    want = sorted(r for oid, t, p, at in stored for r in _expected(oid, t, p, at))
    names = [c for c in COLUMNS if c != "ingested_at"]
    got = wh.rows(
        f"SELECT {', '.join(names)} FROM {wh.database}.events FINAL ORDER BY event_id, event"
    )
    props = names.index("properties")
    ts = names.index("ts")
    skip = COLUMNS.index("ingested_at")

    def norm(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(orjson.loads(v) if i == props else v for i, v in enumerate(row))

    want_rows = sorted(
        (norm(tuple(v for i, v in enumerate(r) if i != skip)) for r in want),
        key=lambda r: (r[0], r[1]),
    )
    got_rows = [norm(tuple(epoch_ms(v) if i == ts else v for i, v in enumerate(r))) for r in got]
    assert len(got_rows) > len(EXAMPLES + EDGES)  # raw rows and facts
    assert got_rows == want_rows
    dump = json.dumps([list(map(str, r)) for r in got], ensure_ascii=False)
    assert (
        "@example.com" not in dump
        and "555 123 4567" not in dump
        and "\u0665\u0665\u0665" not in dump
    )


def test_epoch_ms_floors_like_datetime64() -> None:
    at = dt.datetime(2026, 12, 2, 4, 5, 6, 789_999, tzinfo=dt.UTC)
    assert epoch_ms(at) == int(at.timestamp()) * 1000 + 789
    assert epoch_ms(at.replace(tzinfo=None)) == epoch_ms(at)
    assert epoch_ms(dt.datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=dt.UTC)) == -1


@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 5)), max_size=5),
    st.sets(st.integers(0, 80)),
)
def test_filling_gaps_removes_exactly_the_arrived_ids(
    spans: list[tuple[int, int]], arrived: set[int]
) -> None:
    gaps, start = [], 0
    for skip, width in spans:  # disjoint, increasing ranges
        low = start + skip
        gaps.append(Gap(low, low + width, seen_ms=low))
        start = low + width + 2
    missing = {i for g in gaps for i in range(g.low, g.high + 1)}
    out = fill_gaps(gaps, sorted(arrived))
    assert {i for g in out for i in range(g.low, g.high + 1)} == missing - arrived
    assert all(g.low <= g.high for g in out)
    assert [g.low for g in out] == sorted(g.low for g in out)
    owner = {i: g.seen_ms for g in gaps for i in range(g.low, g.high + 1)}
    assert all(owner[i] == g.seen_ms for g in out for i in range(g.low, g.high + 1))


def test_the_insert_types_are_the_tables(wh: Warehouse) -> None:
    """The insert names its column types (no DESCRIBE per batch): they must be the table's."""
    described = wh.rows(f"DESCRIBE TABLE {wh.database}.events")
    assert [(r[0], r[1]) for r in described] == list(zip(COLUMNS, TYPES, strict=True))
