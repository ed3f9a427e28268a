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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
    ts: dt.datetime
    user_id: str = ""
    anonymous_id: str = ""
    amount_cents: int = 0
    fee_cents: int = 0
    contracts: int = 0
    product: str = ""
    market: str = ""
    role: str = ""
    properties: dict[str, Any] | None = None

    # properties built here from known fields (no PII): the raw payloads and client
    # properties are the ones that go through pii.scrub
    trusted: bool = False

    def values(
        self,
        ingested_at: dt.datetime,
        times: dict[dt.datetime, tuple[dt.datetime, int]] | None = None,
    ) -> list[Any]:
        """The row in COLUMNS order; `ingested_at` naive UTC (one per batch). `times` caches
        the (naive UTC, ver) of each timestamp across a batch: an outbox event's rows share
        one, and the conversion was a third of the row's cost."""
        got = times.get(self.ts) if times is not None else None
        if got is None:
            ts = self.ts if self.ts.tzinfo is not None else self.ts.replace(tzinfo=dt.UTC)
            got = (
                ts.astimezone(dt.UTC).replace(tzinfo=None),
                _VER_BASE - int(ts.timestamp() * 1000),
            )
            if times is not None:
                times[self.ts] = got
        props = self.properties or {}
        return [
            self.event_id,
            self.event,
            self.source,
            self.topic,
            self.user_id,
            self.anonymous_id,
            got[0],
            self.amount_cents,
            self.fee_cents,
            self.contracts,
            self.product,
            self.market,
            self.role,
            orjson.dumps(props if self.trusted else scrub(props), default=str).decode(),
            ingested_at,
            got[1],
        ]


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return 0


def from_outbox(
    *, outbox_id: int, topic: str, payload: dict[str, Any], created_at: dt.datetime
) -> list[Row]:
    """The rows of one outbox event: its raw row and its business facts."""
    p = payload if isinstance(payload, dict) else {"value": payload}
    user = str(p.get("user_id") or "")
    raw = Row(
        event_id=f"outbox:{outbox_id}",
        event=topic,
        source="outbox",
        topic=topic,
        ts=created_at,
        user_id=user,
        properties=p,
    )
    rows = [raw]
    name = _IDENTITY.get(topic)
    if name and user:
        rows.append(Row(f"{name}:{user}", name, "outbox", topic, created_at, user_id=user))
    elif topic == "kyc.approved" or (
        topic == "kyc.tier_changed"
        and p.get("from") == "none"
        and p.get("to") not in (None, "none")
    ):
        if user:
            tier = str(p.get("tier") or p.get("to") or "")
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
    elif topic == "funding.deposit_settled" and p.get("deposit_id"):
        rows.append(
            Row(
                f"deposit_settled:{p['deposit_id']}",
                "deposit_settled",
                "outbox",
                topic,
                created_at,
                user_id=user,
                amount_cents=_int(p.get("amount")),
                product="funding",
            )
        )
    elif topic == "funding.withdrawal_completed" and p.get("withdrawal_id"):
        rows.append(
            Row(
                f"withdrawal_completed:{p['withdrawal_id']}",
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


def _trade_rows(outbox_id: int, p: dict[str, Any], ts: dt.datetime) -> list[Row]:
    rows: list[Row] = []
    ticker = str(p.get("ticker") or "")
    side = str(p.get("side") or "yes")
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
                user_id=str(p.get("user_id") or ""),
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
                user_id=str(fill.get("maker_user_id") or ""),
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


@dataclass(frozen=True)
class Identity:
    anonymous_id: str
    user_id: str
    ts: dt.datetime


class _Message(Protocol):
    @property
    def message_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def received_at(self) -> dt.datetime: ...


def client_rows(messages: Sequence[_Message]) -> tuple[list[Row], list[Identity]]:
    """Rows of client track/identify messages (their payloads were scrubbed on arrival)."""
    rows: list[Row] = []
    identities: list[Identity] = []
    for m in messages:
        p = m.payload
        ts = _parse_ts(p.get("timestamp")) or m.received_at
        user = str(p.get("user_id") or "")
        anon = str(p.get("anonymous_id") or "")
        if m.kind == "identify":
            rows.append(
                Row(
                    f"m:{m.message_id}",
                    "identify",
                    "identify",
                    "identify",
                    ts,
                    user_id=user,
                    anonymous_id=anon,
                    properties=p.get("traits") or {},
                )
            )
            if user and anon:
                identities.append(Identity(anon, user, ts))
        else:
            rows.append(
                Row(
                    f"m:{m.message_id}",
                    str(p.get("event") or ""),
                    "track",
                    "track",
                    ts,
                    user_id=user,
                    anonymous_id=anon,
                    properties=p.get("properties") or {},
                )
            )
    return rows, identities


def _parse_ts(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
