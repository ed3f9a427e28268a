"""Earning rules (data, versioned) and the consumer that applies them to outbox events.

Each event is applied at most once (its outbox id is recorded in `rewards_events` in the same
transaction as the points). A rule is matched by event type and active window at the event's
time; its version is kept on the lots it makes, so a rule change never rewrites history.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.kit.db import utcnow
from pull.rewards import points, referrals, tiers
from pull.rewards import repository as repo
from pull.rewards.errors import InvalidRule, RuleNotFound
from pull.rewards.models import RewardRule
from pull.rewards.schemas import RuleCreate, RuleWrite

# Events that earn (through rules), events that take earnings back.
EARNING_TOPICS = (
    "kyc.approved",
    "funding.deposit_settled",
    "funding.withdrawal_completed",
    "exchange.trade",
    "exchange.settlement",
)
REVERSING_TOPICS = {"funding.deposit_returned": "deposit"}
# `exchange.market` with result `void`: the market's trades are undone (its escrow goes back
# pro rata), so the points its trades earned are reversed. The exchange has no per-trade bust.
MARKET_TOPIC = "exchange.market"
CONSUMED_TOPICS = (*EARNING_TOPICS, *REVERSING_TOPICS, MARKET_TOPIC)
FIELDS_BY_TOPIC = {
    "kyc.approved": {"count"},
    "funding.deposit_settled": {"count", "amount"},
    "funding.withdrawal_completed": {"count", "amount"},
    "exchange.trade": {"count", "contracts", "fees"},
    "exchange.settlement": {"count", "revenue"},
}


@dataclass(frozen=True, slots=True)
class Participant:
    user_id: uuid.UUID
    measures: dict[str, int]
    source_ref: str
    # 0 for a user's first part in an event, n for their (n+1)th (a maker with two orders
    # filled by one taker): part of the earning's key, so each part earns once.
    nth: int = 0
    # The exchange market of a trade's earning (its lot is reversed if the market is voided).
    market: str | None = None


def earning_key(event_id: int, rule_id: int, person: Participant) -> str:
    """The key of one participant's earning from one rule for one event (lot and ledger)."""
    key = f"ev:{event_id}:{rule_id}:{person.user_id}"
    return f"{key}:{person.nth}" if person.nth else key


def _numbered(people: list[Participant]) -> list[Participant]:
    seen: dict[uuid.UUID, int] = {}
    out = []
    for p in people:
        n = seen.get(p.user_id, 0)
        seen[p.user_id] = n + 1
        out.append(p if n == 0 else Participant(p.user_id, p.measures, p.source_ref, n, p.market))
    return out


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def participants(topic: str, payload: dict[str, Any]) -> list[Participant]:
    """Who an event concerns and its measures (amounts in cents, contracts, fees)."""
    return _numbered(_participants(topic, payload))


def _participants(topic: str, payload: dict[str, Any]) -> list[Participant]:
    if topic == "kyc.approved":
        user = _uuid(payload.get("user_id"))
        return [Participant(user, {"count": 1}, f"kyc:{user}")] if user else []
    if topic in ("funding.deposit_settled", "funding.withdrawal_completed"):
        user = _uuid(payload.get("user_id"))
        name = "deposit" if "deposit" in topic else "withdrawal"
        ref = f"{name}:{payload.get(name + '_id')}"
        if user is None:
            return []
        return [Participant(user, {"count": 1, "amount": _int(payload.get("amount"))}, ref)]
    if topic == "exchange.trade":
        ticker = str(payload.get("ticker") or "") or None
        taker = _uuid(payload.get("user_id"))
        fills = [f for f in payload.get("fills") or [] if isinstance(f, dict)]
        out: list[Participant] = []
        if taker is not None:
            out.append(
                Participant(
                    taker,
                    {
                        "count": 1,
                        "contracts": sum(_int(f.get("count")) for f in fills),
                        "fees": sum(_int(f.get("taker_fee")) for f in fills),
                    },
                    f"order:{payload.get('order_id')}",
                    market=ticker,
                )
            )
        makers: dict[str, dict[str, Any]] = {}
        for f in fills:
            maker = _uuid(f.get("maker_user_id"))
            if maker is None:
                continue
            entry = makers.setdefault(
                str(f.get("maker_order_id")), {"user": maker, "contracts": 0, "fees": 0}
            )
            entry["contracts"] += _int(f.get("count"))
            entry["fees"] += _int(f.get("maker_fee"))
        for order_id, m in makers.items():
            out.append(
                Participant(
                    m["user"],
                    {"count": 1, "contracts": m["contracts"], "fees": m["fees"]},
                    f"order:{order_id}",
                    market=ticker,
                )
            )
        return out
    if topic == "exchange.settlement":
        if payload.get("result") == "void":
            return []  # a void's payout is the stake given back, not revenue
        ticker = payload.get("ticker")
        out = []
        for s in payload.get("settlements") or []:
            user = _uuid(s.get("user_id")) if isinstance(s, dict) else None
            if user is not None:
                out.append(
                    Participant(
                        user,
                        {"count": 1, "revenue": max(0, _int(s.get("revenue")))},
                        f"settlement:{ticker}:{user}",
                    )
                )
        return out
    return []


def compute(formula: dict[str, Any], measures: dict[str, int]) -> int:
    """Points of a formula for an event's measures (integers only)."""
    base = int(formula.get("points", 0))
    if formula.get("type") == "fixed":
        return base
    value = measures.get(str(formula.get("field")), 0)
    if value < int(formula.get("min") or 0):
        return 0
    return (value // int(formula.get("per") or 1)) * base


def _validate(data: RuleWrite) -> None:
    fields = FIELDS_BY_TOPIC.get(data.event_type)
    if fields is None:
        raise InvalidRule("Unknown event type", details={"event_types": sorted(FIELDS_BY_TOPIC)})
    f = data.formula
    if f.type == "per_unit":
        if f.field is None or f.per is None:
            raise InvalidRule("A per_unit formula needs field and per")
        if f.field not in fields:
            raise InvalidRule(
                f"{data.event_type} has no measure {f.field!r}", details=sorted(fields)
            )
    if data.starts_at and data.ends_at and data.ends_at <= data.starts_at:
        raise InvalidRule("ends_at must be after starts_at")


def _row(
    data: RuleWrite, *, key: str, version: int, actor: uuid.UUID | None, now: dt.datetime
) -> RewardRule:
    return RewardRule(
        key=key,
        version=version,
        event_type=data.event_type,
        formula=data.formula.model_dump(exclude_none=True),
        qualifying=data.qualifying,
        daily_cap=data.daily_cap,
        lifetime_cap=data.lifetime_cap,
        expiry_days=data.expiry_days,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        active=data.active,
        created_by=actor,
        created_at=now,
    )


async def create_rule(
    *, session: AsyncSession, data: RuleCreate, actor_id: uuid.UUID | None
) -> RewardRule:
    _validate(data)
    if await repo.rule_versions(session, data.key):
        raise InvalidRule("A rule with this key exists; PUT a new version", code="RULE_EXISTS")
    row = _row(data, key=data.key, version=1, actor=actor_id, now=utcnow())
    repo.add(session, row)
    await repo.flush(session)
    return row


async def update_rule(
    *, session: AsyncSession, key: str, data: RuleWrite, actor_id: uuid.UUID | None
) -> RewardRule:
    """A new version of the rule; the old one is closed (kept for the lots it made)."""
    _validate(data)
    current = await repo.current_rule_for_update(session, key)
    if current is None:
        raise RuleNotFound()
    now = utcnow()
    current.superseded_at = now
    await repo.flush(session)
    row = _row(data, key=key, version=current.version + 1, actor=actor_id, now=now)
    repo.add(session, row)
    await repo.flush(session)
    return row


async def list_rules(*, session: AsyncSession, key: str | None = None) -> list[RewardRule]:
    if key is None:
        return await repo.current_rules(session)
    found = await repo.rule_versions(session, key)
    if not found:
        raise RuleNotFound()
    return found


def applies(rule: RewardRule, topic: str, at: dt.datetime) -> bool:
    """The version in force when the event happened: from its start (or creation) until its
    end or the version that replaced it."""
    start = max(rule.starts_at, rule.created_at) if rule.starts_at else rule.created_at
    return (
        rule.active
        and rule.event_type == topic
        and start <= at
        and (rule.ends_at is None or at < rule.ends_at)
        and (rule.superseded_at is None or at < rule.superseded_at)
    )


def reversal_of(topic: str, payload: dict[str, Any]) -> str | None:
    """What an event takes back: `deposit:<id>` (a returned deposit's earnings) or
    `market:<ticker>` (a voided market's trade earnings); None for an earning event."""
    kind = REVERSING_TOPICS.get(topic)
    if kind is not None:
        return f"{kind}:{payload.get(kind + '_id')}"
    if topic == MARKET_TOPIC and payload.get("result") == "void" and payload.get("ticker"):
        return f"market:{payload['ticker']}"
    return None


async def reverse(*, session: AsyncSession, ref: str, now: dt.datetime) -> None:
    if ref.startswith("market:"):
        await points.reverse_market(session=session, ticker=ref.removeprefix("market:"), now=now)
    else:
        await points.reverse_source(session=session, source_ref=ref, now=now)


async def consume_event(
    *,
    session: AsyncSession,
    event_id: int,
    topic: str,
    payload: dict[str, Any],
    occurred_at: dt.datetime,
    settings: Settings,
    now: dt.datetime | None = None,
    rules: Iterable[RewardRule] | None = None,
) -> int:
    """Apply one outbox event: earnings by the rules, reversals, referral progress. Returns
    the points earned (0 when the event was already applied)."""
    now = now or utcnow()
    if not await repo.claim_event(session, event_id, topic):
        return 0
    ref = reversal_of(topic, payload)
    if ref is not None:
        await reverse(session=session, ref=ref, now=now)
        return 0
    found = list(rules) if rules is not None else await repo.rules_for(session, topic)
    matching = [r for r in found if applies(r, topic, occurred_at)]
    total = 0
    upgrades: set[uuid.UUID] = set()
    people = participants(topic, payload)
    markets = sorted({p.market for p in people if p.market})
    if markets and await repo.voided_markets(session, markets):
        people = []  # relayed after its market's void: earns nothing
    for person in people:
        bp: int | None = None
        for rule in matching:
            base = compute(rule.formula, person.measures)
            if base <= 0:
                continue
            if rule.qualifying:
                if bp is None:
                    bp = await tiers.multiplier_bp(
                        session=session, user_id=person.user_id, settings=settings
                    )
                base = base * bp // 10_000
            granted = await repo.consume_cap(
                session,
                user_id=person.user_id,
                rule_key=rule.key,
                day=occurred_at.date(),
                points=base,
                daily_cap=rule.daily_cap,
                lifetime_cap=rule.lifetime_cap,
            )
            days = rule.expiry_days or settings.rewards_points_expiry_days
            earned = await points.earn(
                session=session,
                user_id=person.user_id,
                points=granted,
                qualifying=rule.qualifying,
                source=topic,
                key=earning_key(event_id, rule.id, person),
                expires_at=now + dt.timedelta(days=days),
                now=now,
                source_ref=person.source_ref,
                rule_id=rule.id,
                event_id=event_id,
                market=person.market,
            )
            if earned is not None:
                total += earned.points
                if rule.qualifying:
                    upgrades.add(person.user_id)
    if topic in ("kyc.approved", "funding.deposit_settled"):
        for person in people:
            rewarded = await referrals.progress(
                session=session,
                referee_id=person.user_id,
                topic=topic,
                amount=person.measures.get("amount", 0),
                settings=settings,
                now=now,
            )
            upgrades.update(rewarded)
    for user_id in upgrades:
        await tiers.upgrade(session=session, user_id=user_id, settings=settings, now=now)
    if total:
        await repo.set_event_points(session, event_id, total)
    return total
