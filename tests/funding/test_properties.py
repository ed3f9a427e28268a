"""Property test through the funding service (no Temporal): random interleavings of deposits,
withdrawals, their Plaid events in any order (duplicated, late, contradictory), spending and
replays keep the trial balance at zero, never leave a user balance negative, and account for
every cent: what the user holds equals active deposits minus completed withdrawals minus
spending, plus what a return's shortfall put on the recovery account."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.funding import deposits, service, withdrawals
from pull.funding.providers.sandbox import PlaidSandbox
from pull.kit.crypto import FieldCipher
from pull.kit.errors import AppError
from pull.ledger.service import (
    Balance,
    Leg,
    get_balance,
    system_account,
    transfer,
    trial_balance,
    user_account,
)
from tests.conftest import TestUser, UserFactory

amounts = st.integers(min_value=1, max_value=30_000)
index = st.integers(min_value=0, max_value=20)
events = st.sampled_from(
    ["pending", "posted", "settled", "settled", "settled", "failed", "returned", "cancelled"]
)
deposit = st.tuples(st.just("deposit"), amounts)
deposit_event = st.tuples(st.just("deposit_event"), index, events)
percent = st.integers(min_value=1, max_value=120)  # of what is withdrawable / available now
withdraw = st.tuples(st.just("withdraw"), percent, st.sampled_from(["standard", "instant"]))
withdrawal_event = st.tuples(st.just("withdrawal_event"), index, events)
operation = st.one_of(
    deposit,
    deposit,
    deposit_event,
    deposit_event,
    deposit_event,
    withdraw,
    withdraw,
    withdrawal_event,
    withdrawal_event,
    st.tuples(st.just("spend"), percent),
    st.tuples(st.just("replay_start"), index),
)


async def _run(
    maker: async_sessionmaker[AsyncSession], fn: Callable[[AsyncSession], Awaitable[Any]]
) -> Any:
    try:
        async with maker() as s, s.begin():
            return await fn(s)
    except AppError:
        return None


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(
    ops=[
        ("deposit", 20_000),
        ("deposit_event", 0, "settled"),
        ("withdraw", 25, "standard"),
        ("withdrawal_event", 0, "settled"),
        ("deposit", 7_000),
        ("spend", 100),
        ("deposit_event", 1, "settled"),
        ("deposit_event", 0, "returned"),
    ]
)
@example(
    ops=[
        ("deposit", 30_000),
        ("spend", 100),
        ("deposit_event", 0, "failed"),
        ("deposit", 500),
        ("deposit_event", 1, "settled"),
        ("withdraw", 100, "instant"),
        ("withdrawal_event", 0, "returned"),
        ("deposit_event", 1, "returned"),
        ("replay_start", 0),
    ]
)
@given(ops=st.lists(operation, min_size=5, max_size=30))
async def test_random_funding_interleavings_keep_every_cent(
    ops: list[tuple[Any, ...]],
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    redis: Redis,
    user_factory: UserFactory,
    kyc_tier: Callable[[uuid.UUID, str], Awaitable[None]],
) -> None:
    user: TestUser = await user_factory()
    await kyc_tier(user.id, "standard")
    plaid = PlaidSandbox(redis, key_seed=settings.plaid_sandbox_key_seed)
    cipher = FieldCipher(settings.field_encryption_keys)
    link = await plaid.sandbox_public_token(
        username="user_good", password="pass_good", institution_id="ins_109508"
    )
    bank = await _run(
        sessionmaker,
        lambda s: service.link_bank_account(
            session=s,
            provider=plaid,
            cipher=cipher,
            user_id=user.id,
            public_token=link.public_token,
            account_id=link.accounts[0].account_id,
        ),
    )
    assert bank is not None
    deposit_ids: list[uuid.UUID] = []
    withdrawal_ids: list[uuid.UUID] = []
    spent = 0

    for op in ops:
        name = op[0]
        if name == "deposit":
            made = await _run(
                sessionmaker,
                lambda s, a=op[1]: deposits.create_deposit(
                    session=s, settings=settings, user_id=user.id, bank_account_id=bank.id, amount=a
                ),
            )
            if made is not None:
                deposit_ids.append(made.id)
                await _run(
                    sessionmaker,
                    lambda s, d=made.id: deposits.start_deposit(
                        session=s, provider=plaid, cipher=cipher, deposit_id=d
                    ),
                )
        elif name == "deposit_event" and deposit_ids:
            await _run(
                sessionmaker,
                lambda s, d=deposit_ids[op[1] % len(deposit_ids)], e=op[2]: (
                    deposits.apply_deposit_event(
                        session=s, deposit_id=d, event_type=e, failure_reason=None
                    )
                ),
            )
        elif name == "withdraw":
            wanted = max(1, (await _balance(sessionmaker, user.id)).withdrawable * op[1] // 100)
            made = await _run(
                sessionmaker,
                lambda s, a=wanted, sp=op[2]: withdrawals.create_withdrawal(
                    session=s,
                    settings=settings,
                    user_id=user.id,
                    bank_account_id=bank.id,
                    amount=a,
                    speed=sp,
                ),
            )
            if made is not None:
                withdrawal_ids.append(made.id)
                await _run(
                    sessionmaker,
                    lambda s, w=made.id: withdrawals.start_withdrawal(
                        session=s, provider=plaid, cipher=cipher, withdrawal_id=w
                    ),
                )
        elif name == "withdrawal_event" and withdrawal_ids:
            await _run(
                sessionmaker,
                lambda s, w=withdrawal_ids[op[1] % len(withdrawal_ids)], e=op[2]: (
                    withdrawals.apply_withdrawal_event(
                        session=s, withdrawal_id=w, event_type=e, failure_reason=None
                    )
                ),
            )
        elif name == "spend":
            wanted = max(1, (await _balance(sessionmaker, user.id)).available * op[1] // 100)
            done = await _run(
                sessionmaker,
                lambda s, a=wanted, key=f"spend-{uuid.uuid4()}": transfer(
                    session=s,
                    idempotency_key=key,
                    kind="trade",
                    legs=[
                        Leg(user_account(user.id, "cash"), -a),
                        Leg(system_account("market_escrow"), a),
                    ],
                ),
            )
            spent += wanted if done is not None else 0
        elif name == "replay_start" and (deposit_ids or withdrawal_ids):
            everything = deposit_ids + withdrawal_ids
            subject = everything[op[1] % len(everything)]
            if subject in deposit_ids:
                await _run(
                    sessionmaker,
                    lambda s, d=subject: deposits.start_deposit(
                        session=s, provider=plaid, cipher=cipher, deposit_id=d
                    ),
                )
            else:
                await _run(
                    sessionmaker,
                    lambda s, w=subject: withdrawals.start_withdrawal(
                        session=s, provider=plaid, cipher=cipher, withdrawal_id=w
                    ),
                )
        await _check(sessionmaker, user.id, spent)


async def _balance(maker: async_sessionmaker[AsyncSession], user_id: uuid.UUID) -> Balance:
    async with maker() as s:
        return await get_balance(session=s, user_id=user_id)


async def _check(maker: async_sessionmaker[AsyncSession], user_id: uuid.UUID, spent: int) -> None:
    async with maker() as s:
        tb = await trial_balance(session=s)
        assert tb.balanced, tb
        b = await get_balance(session=s, user_id=user_id)
        assert b.available >= 0 and b.held >= 0 and b.pending_deposits >= 0
        assert 0 <= b.withdrawable <= b.available
        active = await s.scalar(
            text(
                "SELECT COALESCE(sum(amount), 0) FROM deposits WHERE user_id = :u "
                "AND status IN ('pending', 'posted', 'settled')"
            ),
            {"u": user_id},
        )
        completed = await s.scalar(
            text(
                "SELECT COALESCE(sum(amount), 0) FROM withdrawals WHERE user_id = :u "
                "AND status = 'completed'"
            ),
            {"u": user_id},
        )
        recovered = await s.scalar(
            text(
                "SELECT COALESCE(sum(e.amount), 0) FROM ledger_entries e "
                "JOIN ledger_transfers t ON t.id = e.transfer_id "
                "JOIN ledger_accounts a ON a.id = e.account_id "
                "WHERE a.owner_id IS NULL "
                "AND a.kind = 'negative_balance_recovery:' || CAST(:u AS text)"
            ),
            {"u": str(user_id)},
        )
        assert b.total == int(active or 0) - int(completed or 0) - spent - int(recovered or 0)
