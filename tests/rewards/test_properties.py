"""Property: any sequence of earnings, reversals, redemptions (fulfilled or failed), refunds,
expiries and tier reviews keeps every user's available points equal to the sum of their
lots, never negative, the ledger's trial balance at zero, and the tiers equal to what a
recomputation from the ledger (and a model of the rules) gives."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.ledger.service import account_available, trial_balance
from pull.rewards import points, tiers
from pull.rewards import repository as repo
from pull.rewards import service as rewards
from pull.rewards.errors import InsufficientPoints
from tests.ledger.conftest import insert_user

who = st.integers(min_value=0, max_value=1)
index = st.integers(min_value=0, max_value=20)
operation = st.one_of(
    st.tuples(st.just("earn"), who, st.integers(1, 900), st.booleans(), st.integers(1, 60)),
    st.tuples(st.just("reverse"), index),
    st.tuples(st.just("redeem"), who, st.integers(1, 1500), st.booleans()),
    st.tuples(st.just("refund"), index),
    st.tuples(st.just("advance"), st.integers(1, 30)),
    st.tuples(st.just("review"), st.just(0)),
)


@dataclass
class World:
    users: list[uuid.UUID]
    now: dt.datetime
    lots: list[int] = field(default_factory=list)
    fulfilled: list[tuple[uuid.UUID, str, int]] = field(default_factory=list)
    refunded: set[str] = field(default_factory=set)
    tier: dict[uuid.UUID, str] = field(default_factory=dict)


async def step(s: AsyncSession, w: World, op: tuple[Any, ...], cfg: Settings) -> None:
    name = op[0]
    if name == "earn":
        user, amount, qualifying, days = w.users[op[1]], op[2], op[3], op[4]
        earned = await points.earn(
            session=s,
            user_id=user,
            points=amount,
            qualifying=qualifying,
            source="test",
            key=uuid.uuid4().hex,
            expires_at=w.now + dt.timedelta(days=days),
            now=w.now,
            source_ref=f"src:{len(w.lots)}",
        )
        assert earned is not None
        w.lots.append(earned.lot_id)
        if qualifying:
            await tiers.upgrade(session=s, user_id=user, settings=cfg, now=w.now)
            ladder = tiers.tiers(cfg)
            q = await tiers.qualifying_points(session=s, user_id=user, now=dt.datetime.now(dt.UTC))
            reached = tiers.tier_for(q, ladder).name
            current = w.tier.get(user, ladder[0].name)
            if tiers.index_of(reached, ladder) > tiers.index_of(current, ladder):
                w.tier[user] = reached
    elif name == "reverse" and w.lots:
        await points.reverse_lot(session=s, lot_id=w.lots[op[1] % len(w.lots)], now=w.now)
    elif name == "redeem":
        user, amount, succeed = w.users[op[1]], op[2], op[3]
        ref = uuid.uuid4().hex
        spendable = sum(x.remaining for x in await repo.spendable(s, user, w.now))
        try:
            await points.hold(session=s, user_id=user, points=amount, ref=ref, now=w.now)
        except InsufficientPoints:
            assert spendable < amount
            return
        assert spendable >= amount
        if succeed:
            await points.settle(session=s, ref=ref)
            w.fulfilled.append((user, ref, amount))
        else:
            await points.release(session=s, ref=ref, now=w.now)
    elif name == "refund" and w.fulfilled:
        user, ref, amount = w.fulfilled[op[1] % len(w.fulfilled)]
        if ref in w.refunded:
            return
        await points.refund(session=s, user_id=user, points=amount, ref=ref, now=w.now)
        w.refunded.add(ref)
    elif name == "advance":
        w.now += dt.timedelta(days=op[1])
        while await points.expire_due(session=s, now=w.now):
            pass
    elif name == "review":
        # Everyone is due: reviews use the real clock for the ledger window.
        await s.execute(text("UPDATE rewards_profiles SET tier_reviewed_at = '2000-01-01'"))
        ladder = tiers.tiers(cfg)
        real_now = dt.datetime.now(dt.UTC)
        expected = {}
        for user in w.users:
            row = await tiers.profile(session=s, user_id=user, settings=cfg)
            q = await tiers.qualifying_points(session=s, user_id=user, now=real_now)
            expected[user] = tiers.reviewed_tier(row.tier, q, ladder)
        await tiers.review_due(session=s, settings=cfg, now=real_now, limit=10)
        w.tier.update(expected)


async def check(s: AsyncSession, w: World, cfg: Settings) -> None:
    ladder = tiers.tiers(cfg)
    real_now = dt.datetime.now(dt.UTC)
    for user in w.users:
        available = await account_available(session=s, account=points.account(user))
        remaining = await s.scalar(
            text("SELECT coalesce(sum(remaining), 0) FROM rewards_lots WHERE user_id = :u"),
            {"u": user},
        )
        assert available == remaining >= 0
        # Qualifying points recomputed from the lots (earned minus what reversals took back)
        # agree with the ledger's, and the tier is never below what they reach.
        model_q = await s.scalar(
            text(
                "SELECT coalesce(sum(l.points), 0) - coalesce((SELECT sum(u.points) "
                "FROM rewards_lot_uses u JOIN rewards_lots r ON r.id::text = u.purpose_ref "
                "WHERE u.purpose = 'reversal' AND r.user_id = :u AND r.qualifying), 0) "
                "FROM rewards_lots l WHERE l.user_id = :u AND l.qualifying"
            ),
            {"u": user},
        )
        ledger_q = await tiers.qualifying_points(session=s, user_id=user, now=real_now)
        assert ledger_q == max(0, int(model_q or 0))
        row = await tiers.profile(session=s, user_id=user, settings=cfg)
        assert row.tier == w.tier.get(user, ladder[0].name)
    tb = await trial_balance(session=s)
    assert tb.balanced, tb
    consistency = await rewards.check_consistency(session=s)
    assert not consistency.mismatched


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=1, max_size=25))
async def test_any_sequence_keeps_points_and_books_consistent(
    ops: list[tuple[Any, ...]],
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    async with sessionmaker() as s, s.begin():
        users = [await insert_user(s), await insert_user(s)]
    w = World(users=users, now=dt.datetime.now(dt.UTC))
    for op in ops:
        async with sessionmaker() as s, s.begin():
            await step(s, w, op, settings)
        async with sessionmaker() as s:
            await check(s, w, settings)
