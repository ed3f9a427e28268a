"""The ingest hot path: outbox rows straight to columns, the PII check on the JSON text, the
gaps of the outbox cursor, and the insert's column types."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pull.analytics.client import Warehouse
from pull.analytics.ingest import Gap, fill_gaps
from pull.analytics.normalize import COLUMNS, TYPES, EventColumns, epoch_ms, from_outbox
from pull.analytics.pii import is_clean_json, scrub

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


@given(st.sampled_from(EXAMPLES), st.integers(1, 10**9))
def test_the_fast_path_writes_what_the_row_path_writes(example: tuple[str, Any], oid: int) -> None:
    topic, payload = example
    at = dt.datetime(2026, 12, 2, 4, 5, 6, 789_123, tzinfo=dt.UTC)
    fast, slow = EventColumns(), EventColumns()
    fast.add_outbox(oid, topic, _pg_text(payload), epoch_ms(at))
    for row in from_outbox(outbox_id=oid, topic=topic, payload=payload, created_at=at):
        slow.add_row(row)
    f, s = fast.columns(1), slow.columns(1)
    props = COLUMNS.index("properties")
    for name, a, b in zip(COLUMNS, f, s, strict=True):
        if name == "properties":
            assert [orjson.loads(x) for x in a] == [orjson.loads(x) for x in b]
        else:
            assert a == b, name
    assert all("@" not in p and "555" not in p for p in f[props])


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
