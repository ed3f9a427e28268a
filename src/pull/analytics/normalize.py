"""Turning captured events into rows of `events` (docs/analytics.md, "Event schema").

Every outbox event becomes one raw row (`event` = its topic, id `outbox:<id>`). The business
facts the dashboards count also get a row of their own with a canonical event name and an id
derived from the business key, so the live path and a backfill from PostgreSQL produce the
same id and ClickHouse keeps one row:

| event | from | event_id |
|---|---|---|
| signed_up, email_verified, phone_verified | identity.* | `<event>:<user_id>` |
| kyc_approved | kyc.approved, kyc.tier_changed (none -> a tier) | `kyc_approved:<user_id>` |
| deposit_settled | funding.deposit_settled | `deposit_settled:<deposit_id>` |
| withdrawal_completed | funding.withdrawal_completed | `withdrawal_completed:<withdrawal_id>` |
| trade (role taker and role maker) | exchange.trade, per fill | `trade:<outbox id>:<n>:<role>` |

Client events (track, identify) keep their own name with id `m:<message_id>`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import orjson

from pull.analytics.pii import scrub

COLUMNS = (
    "event_id",
    "event",
    "source",
    "topic",
    "user_id",
    "anonymous_id",
    "ts",
    "amount_cents",
    "fee_cents",
    "contracts",
    "product",
    "market",
    "role",
    "properties",
    "ingested_at",
    "ver",
)
# their ClickHouse types (chschema migration 1), so an insert needs no DESCRIBE first
TYPES = (
    "String",
    "LowCardinality(String)",
    "LowCardinality(String)",
    "LowCardinality(String)",
    "String",
    "String",
    "DateTime64(3, 'UTC')",
    "Int64",
    "Int64",
    "Int64",
    "LowCardinality(String)",
    "String",
    "LowCardinality(String)",
    "String",
    "DateTime64(3, 'UTC')",
    "UInt64",
)

# ClickHouse keeps the row with the largest `ver`: larger for earlier events, so a fact seen
# twice with different times (a backfill and the live event) keeps its first time.
_VER_BASE = 2**62

BUSINESS_EVENTS = (
    "signed_up",
    "email_verified",
    "phone_verified",
    "kyc_approved",
    "deposit_settled",
    "withdrawal_completed",
    "trade",
)

_IDENTITY = {
    "identity.user_registered": "signed_up",
    "identity.email_verified": "email_verified",
    "identity.phone_verified": "phone_verified",
}


@dataclass
class Row:
    event_id: str
    event: str
    source: str
    topic: str
    # when it happened: an aware datetime (naive = UTC), or epoch milliseconds
    ts: dt.datetime | int
    user_id: str = ""
    anonymous_id: str = ""
    amount_cents: int = 0
    fee_cents: int = 0
    contracts: int = 0
    product: str = ""
    market: str = ""
    role: str = ""
    properties: dict[str, Any] | None = None

    # properties built here from known fields (no PII), or already scrubbed (client events
    # are scrubbed on arrival); the raw payloads are the ones that go through pii.scrub
    trusted: bool = False


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def epoch_ms(ts: dt.datetime | int) -> int:
    """Epoch milliseconds (floored, as DateTime64(3) stores it); naive datetimes are UTC."""
    if isinstance(ts, int):
        return ts
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return (ts - _EPOCH) // _MS


class EventColumns:
    """A batch of `events` rows, column by column: the insert format (clickhouse-connect's
    column-oriented insert: no per-row lists, no transposition; times as epoch-millisecond
    integers, which it writes as DateTime64(3) ticks without converting datetimes)."""

    __slots__ = ("cols",)

    def __init__(self) -> None:
        self.cols: tuple[list[Any], ...] = tuple([] for _ in COLUMNS)

    def __len__(self) -> int:
        return len(self.cols[0])

    def add(
        self,
        event_id: str,
        event: str,
        source: str,
        topic: str,
        user_id: str,
        anonymous_id: str,
        ts_ms: int,
        amount_cents: int,
        fee_cents: int,
        contracts: int,
        product: str,
        market: str,
        role: str,
        properties: str,
    ) -> None:
        c = self.cols
        c[0].append(event_id)
        c[1].append(event)
        c[2].append(source)
        c[3].append(topic)
        c[4].append(user_id)
        c[5].append(anonymous_id)
        c[6].append(ts_ms)
        c[7].append(amount_cents)
        c[8].append(fee_cents)
        c[9].append(contracts)
        c[10].append(product)
        c[11].append(market)
        c[12].append(role)
        c[13].append(properties)
        c[15].append(_VER_BASE - ts_ms)

    def add_row(self, r: Row) -> None:
        props = r.properties
        if not props:
            text = "{}"
        else:
            text = orjson.dumps(props if r.trusted else scrub(props), default=str).decode()
        self.add(
            r.event_id,
            r.event,
            r.source,
            r.topic,
            r.user_id,
            r.anonymous_id,
            epoch_ms(r.ts),
            r.amount_cents,
            r.fee_cents,
            r.contracts,
            r.product,
            r.market,
            r.role,
            text,
        )

    def columns(self, ingested_ms: int) -> list[list[Any]]:
        c = list(self.cols)
        c[14] = [ingested_ms] * len(self)
        return c


_DIGITS = re.compile(r"-?[0-9]{1,18}")


def _int(value: Any) -> int:
    """An amount from a payload: an integer, a boolean as 0/1, a string of digits, else 0
    (chschema._int says the same in SQL)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return 0


def _text(value: Any) -> str:
    """An id or a name from a payload: a string as it is, a non-zero integer as its digits,
    else '' (chschema._text says the same in SQL)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value != 0:
        return str(value)
    return ""


FACT_TOPICS = frozenset(
    {
        *_IDENTITY,
        "kyc.approved",
        "kyc.tier_changed",
        "funding.deposit_settled",
        "funding.withdrawal_completed",
        "exchange.trade",
    }
)


def from_outbox(
    *, outbox_id: int, topic: str, payload: dict[str, Any], created_at: dt.datetime | int
) -> list[Row]:
    """The rows of one outbox event: its raw row and its business facts."""
    p = scrub(payload if isinstance(payload, dict) else {"value": payload})
    user = _text(p.get("user_id"))
    raw = Row(
        event_id=f"outbox:{outbox_id}",
        event=topic,
        source="outbox",
        topic=topic,
        ts=created_at,
        user_id=user,
        properties=p,
        trusted=True,  # scrubbed above
    )
    return [raw, *facts(outbox_id=outbox_id, topic=topic, payload=p, ts=created_at, user=user)]


def facts(
    *, outbox_id: int, topic: str, payload: dict[str, Any], ts: dt.datetime | int, user: str
) -> list[Row]:
    """The business-fact rows of one outbox event (none for most topics)."""
    p = payload
    rows: list[Row] = []
    created_at = ts
    name = _IDENTITY.get(topic)
    if name and user:
        rows.append(Row(f"{name}:{user}", name, "outbox", topic, created_at, user_id=user))
    elif topic == "kyc.approved" or (
        topic == "kyc.tier_changed"
        and p.get("from") == "none"
        and p.get("to") not in (None, "none")
    ):
        if user:
            tier = _text(p.get("tier")) or _text(p.get("to"))
            rows.append(
                Row(
                    f"kyc_approved:{user}",
                    "kyc_approved",
                    "outbox",
                    topic,
                    created_at,
                    user_id=user,
                    properties={"tier": tier},
                    trusted=True,
                )
            )
    elif topic == "funding.deposit_settled" and _text(p.get("deposit_id")):
        rows.append(
            Row(
                f"deposit_settled:{_text(p['deposit_id'])}",
                "deposit_settled",
                "outbox",
                topic,
                created_at,
                user_id=user,
                amount_cents=_int(p.get("amount")),
                product="funding",
            )
        )
    elif topic == "funding.withdrawal_completed" and _text(p.get("withdrawal_id")):
        rows.append(
            Row(
                f"withdrawal_completed:{_text(p['withdrawal_id'])}",
                "withdrawal_completed",
                "outbox",
                topic,
                created_at,
                user_id=user,
                amount_cents=_int(p.get("amount")),
                fee_cents=_int(p.get("fee")),
                product="funding",
            )
        )
    elif topic == "exchange.trade":
        rows.extend(_trade_rows(outbox_id, p, created_at))
    return rows


def _trade_rows(outbox_id: int, p: dict[str, Any], ts: dt.datetime | int) -> list[Row]:
    rows: list[Row] = []
    ticker = _text(p.get("ticker"))
    side = _text(p.get("side")) or "yes"
    for n, fill in enumerate(p.get("fills") or []):
        if not isinstance(fill, dict):
            continue
        count = _int(fill.get("count"))
        yes_price = _int(fill.get("yes_price"))
        price = yes_price if side == "yes" else 100 - yes_price
        common = {"side": side, "action": p.get("action"), "yes_price": yes_price}
        rows.append(
            Row(
                f"trade:{outbox_id}:{n}:taker",
                "trade",
                "outbox",
                "exchange.trade",
                ts,
                user_id=_text(p.get("user_id")),
                amount_cents=count * price,
                fee_cents=_int(fill.get("taker_fee")),
                contracts=count,
                product="exchange",
                market=ticker,
                role="taker",
                properties=common,
                trusted=True,
            )
        )
        rows.append(
            Row(
                f"trade:{outbox_id}:{n}:maker",
                "trade",
                "outbox",
                "exchange.trade",
                ts,
                user_id=_text(fill.get("maker_user_id")),
                fee_cents=_int(fill.get("maker_fee")),
                contracts=count,
                product="exchange",
                market=ticker,
                role="maker",
                properties=common,
                trusted=True,
            )
        )
    return rows


def identity_milestones(
    *,
    user_id: str,
    created_at: dt.datetime,
    email_verified_at: dt.datetime | None,
    phone_verified_at: dt.datetime | None,
) -> list[Row]:
    """Backfill rows for a user's sign-up and verifications (same ids as the live events)."""
    rows = [Row(f"signed_up:{user_id}", "signed_up", "backfill", "users", created_at, user_id)]
    if email_verified_at is not None:
        rows.append(
            Row(
                f"email_verified:{user_id}",
                "email_verified",
                "backfill",
                "users",
                email_verified_at,
                user_id,
            )
        )
    if phone_verified_at is not None:
        rows.append(
            Row(
                f"phone_verified:{user_id}",
                "phone_verified",
                "backfill",
                "users",
                phone_verified_at,
                user_id,
            )
        )
    return rows
