"""`ledger.bulk.transfer_bulk`: one posted transfer with any number of legs, set-based. It
must write exactly what `transfer` writes (balances, one entry per leg with its
`balance_after`, the trial balance at zero, the invariant report clean), apply a key once,
refuse other content under a used key, and refuse (writing nothing) a user debit the account
cannot cover. Compared with a model under random legs (hypothesis)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.ledger.bulk import transfer_bulk
from pull.ledger.service import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidTransfer,
    Leg,
    get_balance,
    system_account,
    transfer,
    trial_balance,
    user_account,
)
from tests.ledger.conftest import insert_user

Maker = async_sessionmaker[AsyncSession]
CLEARING = system_account("bank_clearing")
ESCROW = system_account("market_escrow:kxbulk")
START = 1_000


async def _users(maker: Maker, n: int, funded: int) -> list[uuid.UUID]:
    """`n` users; the first `funded` of them hold START cents of cash."""
    async with maker() as s, s.begin():
        users = [await insert_user(s) for _ in range(n)]
        for u in users[:funded]:
            await transfer(
                session=s,
                idempotency_key=f"bulk-fund:{u}",
                kind="deposit",
                legs=[Leg(CLEARING, -START), Leg(user_account(u, "cash"), START)],
            )
    return users


async def _books_clean(s: AsyncSession) -> None:
    """Trial balance zero, every balance equal to its entries, every transfer balanced."""
    tb = await trial_balance(session=s)
    assert tb.balanced, tb


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    amounts=st.lists(st.integers(min_value=-1_500, max_value=1_500), min_size=1, max_size=12),
    repeat=st.lists(st.integers(min_value=0, max_value=11), max_size=4),
)
async def test_bulk_matches_the_model(
    amounts: list[int], repeat: list[int], sessionmaker: Maker
) -> None:
    # users 0-5 funded, 6-11 with no account at all yet (created by the transfer)
    users = await _users(sessionmaker, 12, 6)
    legs = [Leg(user_account(users[i], "cash"), a) for i, a in enumerate(amounts)]
    legs += [Leg(user_account(users[i], "cash"), 7) for i in repeat]  # merged per account
    want = {u: (START if i < 6 else 0) for i, u in enumerate(users)}
    for leg in legs:
        assert leg.account.owner_id is not None
        want[leg.account.owner_id] += leg.amount
    total = sum(leg.amount for leg in legs)
    legs.append(Leg(CLEARING, -total))
    key = f"bulk:{uuid.uuid4()}"
    merged: dict[object, int] = {}
    for leg in legs:
        merged[leg.account] = merged.get(leg.account, 0) + leg.amount
    moving = [a for a, v in merged.items() if v]
    try:
        async with sessionmaker() as s, s.begin():
            tid = await transfer_bulk(
                session=s, idempotency_key=key, kind="test.bulk", legs=legs, reference="r"
            )
    except InsufficientFunds:
        assert min(want.values()) < 0
        want = {u: (START if i < 6 else 0) for i, u in enumerate(users)}
        tid = None
    except InvalidTransfer:
        assert len(moving) < 2  # nothing to move after merging legs per account
        return
    else:
        assert min(want.values()) >= 0
    async with sessionmaker() as s:
        for u in users:
            assert (await get_balance(session=s, user_id=u)).available == want[u]
        await _books_clean(s)
        if tid is None:
            n = await s.scalar(
                text("SELECT count(*) FROM ledger_transfers WHERE idempotency_key = :k"),
                {"k": key},
            )
            assert n == 0
            return
        # one entry per account that moved, each with the account's balance after it
        rows = (
            await s.execute(
                text(
                    "SELECT e.amount, e.balance_after, a.balance FROM ledger_entries e "
                    "JOIN ledger_accounts a ON a.id = e.account_id WHERE e.transfer_id = :t"
                ),
                {"t": tid},
            )
        ).all()
        assert sum(r[0] for r in rows) == 0
        assert all(r[0] != 0 for r in rows)
        assert len(rows) == len(moving)
        assert all(r[1] == r[2] for r in rows)
    # a replay writes nothing and returns the same transfer; other content conflicts
    async with sessionmaker() as s, s.begin():
        again = await transfer_bulk(
            session=s, idempotency_key=key, kind="test.bulk", legs=legs, reference="r"
        )
    assert again == tid
    with pytest.raises(IdempotencyConflict):
        async with sessionmaker() as s, s.begin():
            await transfer_bulk(
                session=s, idempotency_key=key, kind="test.bulk", legs=legs, reference="other"
            )
    async with sessionmaker() as s:
        for u in users:
            assert (await get_balance(session=s, user_id=u)).available == want[u]


async def test_thousands_of_legs_in_one_transfer(sessionmaker: Maker) -> None:
    """Beyond `transfer`'s 64 legs: 3,000 credits and the escrow debit, one transfer."""
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO users (id, email, password_hash, referral_code) "
                # numbered codes: 7 random hex digits for 3,000 users collide in ~1.7 % of runs
                "SELECT u, u::text || '@bulk.example', 'x', 'k' || lpad(n::text, 7, '0') "
                "FROM (SELECT gen_random_uuid() AS u, n FROM generate_series(1, 3000) n) g"
            )
        )
        found = await s.execute(
            text("SELECT id FROM users WHERE email LIKE '%@bulk.example' ORDER BY id")
        )
        users = [r[0] for r in found]
    legs = [Leg(user_account(u, "cash"), 100 + i % 7) for i, u in enumerate(users)]
    paid = sum(leg.amount for leg in legs)
    async with sessionmaker() as s, s.begin():
        await transfer(
            session=s,
            idempotency_key=f"bulk-escrow:{uuid.uuid4()}",
            kind="deposit",
            legs=[Leg(CLEARING, -paid), Leg(ESCROW, paid)],
        )
        tid = await transfer_bulk(
            session=s,
            idempotency_key=f"bulk-many:{uuid.uuid4()}",
            kind="test.bulk",
            legs=[*legs, Leg(ESCROW, -paid)],
        )
    async with sessionmaker() as s:
        entries = await s.scalar(
            text("SELECT count(*) FROM ledger_entries WHERE transfer_id = :t"), {"t": tid}
        )
        assert entries == len(users) + 1
        assert (await get_balance(session=s, user_id=users[5])).available == 100 + 5 % 7
        await _books_clean(s)


async def test_an_owner_that_is_not_a_user_is_refused(sessionmaker: Maker) -> None:
    with pytest.raises(InvalidTransfer):
        async with sessionmaker() as s, s.begin():
            await transfer_bulk(
                session=s,
                idempotency_key=f"bulk-ghost:{uuid.uuid4()}",
                kind="test.bulk",
                legs=[Leg(user_account(uuid.uuid4(), "cash"), 5), Leg(ESCROW, -5)],
            )


async def test_bulk_account_joins_use_the_owner_index(sessionmaker: Maker) -> None:
    """A settlement of many winners joins its legs (an `unnest` the planner cannot see into)
    to ledger_accounts; the `owner_id = ANY(:owners)` beside each join keeps the plan on the
    owner index instead of a hash join over every account (docs/performance.md). 20,000
    accounts, 1,000 owners, statistics fresh, in a transaction rolled back."""
    from pull.ledger import bulk

    async with sessionmaker() as s, s.begin():
        await s.execute(text("SET LOCAL session_replication_role = replica"))  # no users rows
        await s.execute(
            text(
                "INSERT INTO ledger_accounts (owner_id, currency, kind, shard) "
                "SELECT gen_random_uuid(), 'USD', 'cash', 0 FROM generate_series(1, 20000)"
            )
        )
        await s.execute(text("ANALYZE ledger_accounts"))
        owners = list(
            (
                await s.scalars(
                    text(
                        "SELECT owner_id FROM ledger_accounts WHERE owner_id IS NOT NULL "
                        "ORDER BY random() LIMIT 1000"
                    )
                )
            ).all()
        )
        params = {"owners": owners, "currencies": ["USD"] * 1000, "kinds": ["cash"] * 1000}
        for stmt, extra in ((bulk._CREATE_USER_ACCOUNTS, {}), (bulk._LOCK, {"system": [1]})):
            plan = "\n".join(
                (await s.scalars(text("EXPLAIN " + stmt.text), {**params, **extra})).all()
            )
            assert "Seq Scan on ledger_accounts" not in plan, plan
        await s.rollback()
