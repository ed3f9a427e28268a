"""Property: the batched earning consumer gives exactly what the one-event-at-a-time consumer
gives, for any sequence of events (deposits, KYC approvals, trades with makers, deposit
returns, market voids, redeliveries) cut into any batches, with tier thresholds in reach so
that tiers (and their multipliers) change inside batches; each event earns at most once;
every user's available points equal the sum of their lots; the trial balance stays zero.
Plus the relay path: one bad event in a batch does not hold back the others."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.kit.db import session_scope
from pull.ledger.service import account_available, trial_balance
from pull.rewards import consumer, earning, points
from pull.rewards.schemas import RuleCreate
from tests.ledger.conftest import insert_user

USERS = 3
# The migration's defaults (each test starts from empty tables), plus a promotional KYC rule, a
# maker-fee rule and a capped per-contract rule, so events earn through every kind of rule.
RULES = [
    {
        "key": "kyc-approved",
        "event_type": "kyc.approved",
        "qualifying": False,
        "formula": {"type": "fixed", "points": 500},
        "lifetime_cap": 500,
    },
    {
        "key": "first-deposit",
        "event_type": "funding.deposit_settled",
        "formula": {"type": "fixed", "points": 1000},
        "lifetime_cap": 1000,
    },
    {
        "key": "deposit-dollars",
        "event_type": "funding.deposit_settled",
        "formula": {"type": "per_unit", "field": "amount", "per": 100, "points": 1},
        "daily_cap": 5000,
    },
    {
        "key": "trade-contracts",
        "event_type": "exchange.trade",
        "formula": {"type": "per_unit", "field": "contracts", "per": 1, "points": 1},
        "daily_cap": 2000,
    },
    {
        "key": "trade-fees",
        "event_type": "exchange.trade",
        "qualifying": False,
        "formula": {"type": "per_unit", "field": "fees", "per": 5, "points": 2, "min": 5},
    },
]


async def _rules(maker: async_sessionmaker[AsyncSession]) -> None:
    async with maker() as s, s.begin():
        if await s.scalar(text("SELECT count(*) FROM rewards_rules")):
            return
        for rule in RULES:
            await earning.create_rule(session=s, data=RuleCreate(**rule), actor_id=None)


who = st.integers(min_value=0, max_value=USERS - 1)
index = st.integers(min_value=0, max_value=30)
market = st.integers(min_value=0, max_value=1)
event = st.one_of(
    st.tuples(st.just("deposit"), who, st.integers(1, 900_000)),
    st.tuples(st.just("kyc"), who),
    st.tuples(st.just("trade"), who, who, st.integers(1, 3_000), market),
    st.tuples(st.just("return"), index),
    st.tuples(st.just("void"), market),
    st.tuples(st.just("again"), index),
)
# Tier ladders: thresholds low enough that a few events cross one or more tiers.
LADDERS = [
    "bronze:0,silver:1000,gold:5000,platinum:20000",
    "bronze:0,silver:300,gold:1200,platinum:4000",
    "bronze:0,silver:1000000000",
]


def _payload(op: tuple[Any, ...], users: list[uuid.UUID], world: str, i: int) -> tuple[str, Any]:
    if op[0] == "deposit":
        return "funding.deposit_settled", {
            "deposit_id": f"{world}-{i}",
            "user_id": str(users[op[1]]),
            "amount": op[2],
        }
    if op[0] == "kyc":
        return "kyc.approved", {"user_id": str(users[op[1]]), "tier": "basic"}
    if op[0] == "trade":
        return "exchange.trade", {
            "ticker": f"{world}-M{op[4]}",
            "order_id": f"{world}-{i}",
            "user_id": str(users[op[1]]),
            "fills": [
                {
                    "count": op[3],
                    "taker_fee": 7,
                    "maker_fee": 0,
                    "maker_user_id": str(users[op[2]]),
                    "maker_order_id": f"{world}-m{i}",
                }
            ],
        }
    raise AssertionError(op)


def _events(
    ops: list[tuple[Any, ...]], users: list[uuid.UUID], world: str, base: int
) -> list[consumer.EventIn]:
    """The ops as outbox events; `return` returns an earlier deposit, `void` voids a market
    (its trades' earnings are reversed, later trades earn nothing), `again` redelivers an
    earlier event (same id)."""
    now = dt.datetime.now(dt.UTC)
    out: list[consumer.EventIn] = []
    deposits: list[str] = []
    for i, op in enumerate(ops):
        if op[0] == "again":
            if out:
                out.append(out[op[1] % len(out)])
            continue
        if op[0] == "return":
            if deposits:
                ref = deposits[op[1] % len(deposits)]
                out.append(
                    consumer.EventIn(base + i, "funding.deposit_returned", {"deposit_id": ref}, now)
                )
            continue
        if op[0] == "void":
            payload = {"ticker": f"{world}-M{op[1]}", "status": "closed", "result": "void"}
            out.append(consumer.EventIn(base + i, "exchange.market", payload, now))
            continue
        topic, payload = _payload(op, users, world, i)
        if topic == "funding.deposit_settled":
            deposits.append(payload["deposit_id"])
        out.append(consumer.EventIn(base + i, topic, payload, now))
    return out


def _earns(ops: list[tuple[Any, ...]]) -> bool:
    """Whether some op earns: a deposit, a KYC approval, a trade in a market not voided yet."""
    voided: set[int] = set()
    for op in ops:
        if op[0] == "void":
            voided.add(op[1])
        elif op[0] in ("deposit", "kyc") or (op[0] == "trade" and op[4] not in voided):
            return True
    return False


async def _state(s: AsyncSession, users: list[uuid.UUID], world: str) -> list[Any]:
    """What each user has, comparable across the two worlds (ids mapped to positions)."""
    out: list[Any] = []
    for n, user in enumerate(users):
        available = await account_available(session=s, account=points.account(user))
        lots = (
            await s.execute(
                text(
                    "SELECT points, remaining, qualifying, source, coalesce(source_ref, ''), "
                    "reversed_at IS NOT NULL "
                    "FROM rewards_lots WHERE user_id = :u ORDER BY event_id, rule_id, key"
                ),
                {"u": user},
            )
        ).all()

        def ref(raw: str) -> str:  # ids and the world's prefix taken out
            for m, other in enumerate(users):
                raw = raw.replace(str(other), f"user{m}")
            return raw.replace(f"{world}-", "")

        lots = [(*r[:4], ref(r[4]), r[5]) for r in lots]
        remaining = sum(int(r[1]) for r in lots)
        assert available == remaining >= 0
        usage = (
            await s.execute(
                text(
                    "SELECT rule_key, day_points, lifetime_points FROM rewards_rule_usage "
                    "WHERE user_id = :u ORDER BY rule_key"
                ),
                {"u": user},
            )
        ).all()
        tier = await s.scalar(
            text("SELECT tier FROM rewards_profiles WHERE user_id = :u"), {"u": user}
        )
        out.append((n, available, lots, [tuple(r) for r in usage], tier))
    return out


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(event, min_size=1, max_size=30),
    cuts=st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=10),
    ladder=st.sampled_from(LADDERS),
)
async def test_batches_give_what_one_event_at_a_time_gives(
    ops: list[tuple[Any, ...]],
    cuts: list[int],
    ladder: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    # An event's multiplier is its tier as of that event, in both paths: a tier reached
    # inside a batch applies to the rest of the batch, as event by event.
    cfg = settings.model_copy(
        update={
            "rewards_tiers": ladder,
            "rewards_tier_multipliers_bp": "bronze:10000,silver:11000,gold:12500,platinum:15000",
        }
    )
    await _rules(sessionmaker)
    async with sessionmaker() as s, s.begin():
        one = [await insert_user(s) for _ in range(USERS)]
        many = [await insert_user(s) for _ in range(USERS)]
    base = uuid.uuid4().int % 10**12 * 1_000
    # Worlds named per example: a voided market's ticker stays voided in the database.
    a, b = f"A{base}", f"B{base}"
    single = _events(ops, one, a, 10**15 + base)
    batched = _events(ops, many, b, 2 * 10**15 + base)

    for e in single:
        async with session_scope(sessionmaker) as s:
            await earning.consume_event(
                session=s,
                event_id=e.event_id,
                topic=e.topic,
                payload=e.payload,
                occurred_at=e.occurred_at,
                settings=cfg,
            )
    start, k = 0, 0
    while start < len(batched):
        size = cuts[k % len(cuts)]
        async with session_scope(sessionmaker) as s:
            await consumer.consume_batch(
                session=s, events=batched[start : start + size], settings=cfg
            )
        start, k = start + size, k + 1

    async with sessionmaker() as s:
        state = await _state(s, many, b)
        assert await _state(s, one, a) == state
        if _earns(ops):
            assert any(lots for _, _, lots, _, _ in state), "nothing earned: no rules?"
        tb = await trial_balance(session=s)
        assert tb.balanced, tb
        distinct = {e.event_id for e in batched}
        applied = await s.scalar(
            text("SELECT count(*) FROM rewards_events WHERE event_id = ANY(:ids)"),
            {"ids": list(distinct)},
        )
        assert applied == len(distinct)


async def test_a_bad_event_does_not_hold_back_its_batch(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await _rules(sessionmaker)
    async with sessionmaker() as s, s.begin():
        user = await insert_user(s)
    now = dt.datetime.now(dt.UTC)
    base = 3 * 10**15 + uuid.uuid4().int % 10**12 * 1_000
    good = [
        consumer.EventIn(
            base + i,
            "funding.deposit_settled",
            {"deposit_id": f"bad-batch-{base}-{i}", "user_id": str(user), "amount": 2_000},
            now,
        )
        for i in range(3)
    ]
    # A user that does not exist: its ledger account cannot be made, so this event fails.
    bad = consumer.EventIn(
        base + 9,
        "funding.deposit_settled",
        {"deposit_id": f"bad-batch-{base}-x", "user_id": str(uuid.uuid4()), "amount": 2_000},
        now,
    )
    failed = await consumer.consume(sessionmaker, [good[0], bad, *good[1:]], settings)
    assert list(failed) == [bad.event_id]
    async with sessionmaker() as s:
        applied = await s.scalar(
            text("SELECT count(*) FROM rewards_events WHERE event_id = ANY(:ids)"),
            {"ids": [e.event_id for e in [*good, bad]]},
        )
        assert applied == 3
        assert await account_available(session=s, account=points.account(user)) > 0
    # A retry of the whole batch applies nothing twice.
    assert list(await consumer.consume(sessionmaker, good, settings)) == []
    async with sessionmaker() as s:
        lots = await s.scalar(
            text("SELECT count(*) FROM rewards_lots WHERE user_id = :u"), {"u": user}
        )
    async with sessionmaker() as s:
        again = await s.scalar(
            text("SELECT count(*) FROM rewards_lots WHERE user_id = :u"), {"u": user}
        )
    assert lots == again and lots is not None and lots >= 3


async def test_a_batch_costs_the_same_statements_for_few_or_many_events(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """Round trips per batch are constant: 5 events or 60 over 20 users, same statements."""
    await _rules(sessionmaker)
    engine = sessionmaker.kw["bind"]
    now = dt.datetime.now(dt.UTC)

    async def run(n: int, base: int) -> int:
        async with sessionmaker() as s, s.begin():
            users = [await insert_user(s) for _ in range(min(n, 20))]
        events = [
            consumer.EventIn(
                base + i,
                "funding.deposit_settled",
                {
                    "deposit_id": f"count-{base}-{i}",
                    "user_id": str(users[i % len(users)]),
                    "amount": 5_000,
                },
                now,
            )
            for i in range(n)
        ]
        seen: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            seen.append(statement)

        sa_event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            async with session_scope(sessionmaker) as s:
                done = await consumer.consume_batch(session=s, events=events, settings=settings)
        finally:
            sa_event.remove(engine.sync_engine, "before_cursor_execute", count)
        assert len(done) == n and all(v > 0 for v in done.values())
        return len(seen)

    base = 4 * 10**15 + uuid.uuid4().int % 10**12 * 1_000
    few = await run(5, base)
    many = await run(60, base + 100)
    assert few == many, (few, many)
    assert many <= 20
