"""Property tests: random interleavings of deposits, settlements, withdrawals (holds), posts,
voids, returns, spending and replays keep the trial balance at zero, never leave a user
balance negative, match a simple model, and apply each idempotency key once."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.ledger.service import (
    IdempotencyConflict,
    InsufficientFunds,
    Leg,
    TransferNotPending,
    TransferRead,
    get_balance,
    post_pending,
    system_account,
    transfer,
    trial_balance,
    user_account,
    void_pending,
)
from tests.ledger.conftest import insert_user

CLEARING = system_account("bank_clearing")
FEES = system_account("fee_revenue")
RECOVERY = system_account("negative_balance_recovery")
ESCROW = system_account("market_escrow")
ISSUED = system_account("instant_credit_issued")

amounts = st.integers(min_value=1, max_value=20_000)
who = st.integers(min_value=0, max_value=1)
index = st.integers(min_value=0, max_value=30)
operation = st.one_of(
    st.tuples(st.just("deposit"), who, amounts, st.integers(0, 5_000)),
    st.tuples(st.just("settle"), index),
    st.tuples(st.just("withdraw"), who, amounts),
    st.tuples(st.just("post"), index, st.booleans()),
    st.tuples(st.just("void"), index),
    st.tuples(st.just("return"), who, amounts),
    st.tuples(st.just("spend"), who, amounts),
    st.tuples(st.just("replay"), index),
    st.tuples(st.just("conflict"), index),
)


Replay = Callable[[AsyncSession], Awaitable[Any]]


@dataclass
class Model:
    cash: int = 0
    reserved: int = 0
    pending_deposits: int = 0
    instant: int = 0


@dataclass
class World:
    users: list[uuid.UUID]
    model: dict[uuid.UUID, Model] = field(default_factory=dict)
    deposits: list[tuple[uuid.UUID, int, int, bool]] = field(default_factory=list)
    holds: list[tuple[uuid.UUID, TransferRead, int]] = field(default_factory=list)
    resolved: dict[int, tuple[str, bool]] = field(default_factory=dict)
    calls: list[tuple[Replay, Replay]] = field(default_factory=list)
    results: list[TransferRead] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)


def fee_of(amount: int) -> int:
    return min(max(amount * 25 // 10_000, 25), 500) if amount > 25 else 0


async def step(s: AsyncSession, w: World, op: tuple[Any, ...]) -> None:
    name = op[0]
    key = f"{name}-{uuid.uuid4().hex}"

    async def call(legs: list[Leg], *, kind: str, pending: bool = False) -> TransferRead:
        result = await transfer(
            session=s, idempotency_key=key, kind=kind, legs=legs, pending=pending
        )
        w.keys.add(key)
        w.results.append(result)

        async def again(session: AsyncSession) -> TransferRead:
            return await transfer(
                session=session, idempotency_key=key, kind=kind, legs=legs, pending=pending
            )

        async def other(session: AsyncSession) -> Any:
            changed = [Leg(legs[0].account, legs[0].amount - 1), Leg(ESCROW, 1), *legs[1:]]
            return await transfer(
                session=session, idempotency_key=key, kind=kind, legs=changed, pending=pending
            )

        w.calls.append((again, other))
        return result

    if name == "deposit":
        user, amount, instant = w.users[op[1]], op[2], min(op[3], op[2])
        legs = [
            Leg(CLEARING, -amount),
            Leg(user_account(user, "pending_deposits"), amount - instant),
        ]
        if instant:
            legs += [
                Leg(user_account(user, "cash"), instant),
                Leg(user_account(user, "instant_credit"), instant),
                Leg(ISSUED, -instant),
            ]
        await call(legs, kind="deposit")
        m = w.model[user]
        m.pending_deposits += amount - instant
        m.cash += instant
        m.instant += instant
        w.deposits.append((user, amount, instant, False))
    elif name == "settle":
        if not w.deposits:
            return
        i = op[1] % len(w.deposits)
        user, amount, instant, done = w.deposits[i]
        if done:
            return
        legs = [
            Leg(user_account(user, "pending_deposits"), -(amount - instant)),
            Leg(user_account(user, "cash"), amount - instant),
        ]
        if instant:
            legs += [Leg(user_account(user, "instant_credit"), -instant), Leg(ISSUED, instant)]
        legs = [leg for leg in legs if leg.amount]
        if len(legs) >= 2:
            await call(legs, kind="deposit_settled")
        m = w.model[user]
        m.pending_deposits -= amount - instant
        m.cash += amount - instant
        m.instant -= instant
        w.deposits[i] = (user, amount, instant, True)
    elif name == "withdraw":
        user, amount = w.users[op[1]], op[2]
        fee = fee_of(amount)
        legs = [Leg(user_account(user, "cash"), -amount), Leg(CLEARING, amount - fee)]
        if fee:
            legs.append(Leg(FEES, fee))
        m = w.model[user]
        try:
            hold = await call(legs, kind="withdrawal", pending=True)
        except InsufficientFunds:
            assert m.cash - m.reserved < amount
            return
        assert m.cash - m.reserved >= amount
        m.reserved += amount
        w.holds.append((user, hold, amount))
    elif name in ("post", "void"):
        if not w.holds:
            return
        user, hold, amount = w.holds[op[1] % len(w.holds)]
        m = w.model[user]
        action = (name, bool(op[2]) or len(hold.legs) != 2 if name == "post" else True)
        if hold.id in w.resolved:
            # A second resolution: the same one replays, anything else is refused; no change.
            try:
                if name == "void":
                    again = await void_pending(session=s, transfer_id=hold.id)
                elif action[1]:
                    again = await post_pending(session=s, transfer_id=hold.id)
                else:
                    again = await post_pending(session=s, transfer_id=hold.id, amount=amount // 2)
            except TransferNotPending:
                assert w.resolved[hold.id] != action
                return
            assert again.replayed and w.resolved[hold.id] == action
            return
        w.resolved[hold.id] = action
        try:
            if name == "void":
                await void_pending(session=s, transfer_id=hold.id)
            elif op[2] or len(hold.legs) != 2:
                await post_pending(session=s, transfer_id=hold.id)
                m.cash -= amount
            else:
                await post_pending(session=s, transfer_id=hold.id, amount=amount // 2)
                m.cash -= amount // 2
        except TransferNotPending:
            raise AssertionError("an open hold resolves") from None
        m.reserved -= amount
    elif name == "return":
        user, amount = w.users[op[1]], op[2]
        m = w.model[user]
        available = m.cash - m.reserved
        taken = min(available, amount)
        legs = [Leg(CLEARING, amount)]
        if taken:
            legs.append(Leg(user_account(user, "cash"), -taken))
        if amount - taken:
            legs.append(Leg(RECOVERY, -(amount - taken)))
        await call(legs, kind="deposit_returned")
        m.cash -= taken
    elif name == "spend":
        user, amount = w.users[op[1]], op[2]
        m = w.model[user]
        legs = [Leg(user_account(user, "cash"), -amount), Leg(ESCROW, amount)]
        try:
            await call(legs, kind="trade")
        except InsufficientFunds:
            assert m.cash - m.reserved < amount
            return
        m.cash -= amount
    elif name == "replay":
        if not w.calls:
            return
        i = op[1] % len(w.calls)
        again = await w.calls[i][0](s)
        assert again.replayed and again.id == w.results[i].id
        assert set(again.legs) == set(w.results[i].legs)
    elif name == "conflict":
        if not w.calls:
            return
        try:
            await w.calls[op[1] % len(w.calls)][1](s)
        except IdempotencyConflict:
            pass
        else:
            raise AssertionError("a key reused with other content must conflict")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=1, max_size=30))
async def test_random_interleavings_keep_the_books(
    ops: list[tuple[Any, ...]], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as s, s.begin():
        users = [await insert_user(s), await insert_user(s)]
    w = World(users=users, model={u: Model() for u in users})
    before = await _last_id(sessionmaker)
    for op in ops:
        async with sessionmaker() as s, s.begin():
            await step(s, w, op)
        async with sessionmaker() as s:
            for user in users:
                m = w.model[user]
                b = await get_balance(session=s, user_id=user)
                assert b.available == m.cash - m.reserved >= 0
                assert b.held == m.reserved
                assert b.pending_deposits == m.pending_deposits
                assert b.withdrawable == max(0, m.cash - m.reserved - m.instant)
                assert b.total == m.cash + m.pending_deposits
    async with sessionmaker() as s:
        tb = await trial_balance(session=s)
        assert tb.balanced, tb
        negative = await s.scalar(
            text(
                "SELECT count(*) FROM ledger_accounts "
                "WHERE owner_id IS NOT NULL AND balance - pending_debits < 0"
            )
        )
        assert negative == 0
    # Each key applied once: one new transfer per key, plus one per resolved hold.
    async with sessionmaker() as s:
        created = await s.scalar(
            text("SELECT count(*) FROM ledger_transfers WHERE id > :before"), {"before": before}
        )
        keyed = await s.scalar(
            text("SELECT count(*) FROM ledger_transfers WHERE idempotency_key = ANY(:keys)"),
            {"keys": list(w.keys)},
        )
    assert keyed == len(w.keys)
    assert created == len(w.keys) + len(w.resolved)


async def _last_id(maker: async_sessionmaker[AsyncSession]) -> int:
    async with maker() as s:
        return int(await s.scalar(text("SELECT COALESCE(max(id), 0) FROM ledger_transfers")) or 0)
