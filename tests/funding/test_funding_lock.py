"""The per-user funding lock (docs/money.md, "One lock per user"): concurrent deposits share one
instant-credit allowance, end to end and under any interleaving of deposits, their Plaid events
and withdrawals run side by side."""

from __future__ import annotations

import asyncio
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
from pull.ledger.service import account_balance, get_balance, trial_balance, user_account
from tests.conftest import TestUser, UserFactory
from tests.funding.conftest import FundingEnvFactory

MakeUser = Callable[..., Awaitable[TestUser]]
ALLOWANCE = 25_000  # the standard tier's instant credit


async def test_four_concurrent_deposits_get_one_instant_credit_allowance(
    funding_env: FundingEnvFactory, funded_user: MakeUser
) -> None:
    # Settlement is far away: every deposit's instant credit stays outstanding.
    env = await funding_env(PLAID_SANDBOX_POST_SECONDS=30, PLAID_SANDBOX_SETTLE_SECONDS=30)
    user = await funded_user("standard")
    bank = await env.link_bank(user)
    async with env.worker():
        made = await asyncio.gather(*(env.deposit(user, bank, 25_000) for _ in range(4)))
        done = [await env.wait_status(user, "deposits", d["id"], "pending", "posted") for d in made]
    instant = sorted(d["instant_amount"] for d in done)
    assert instant == [0, 0, 0, ALLOWANCE], instant
    balance = await env.balance(user)
    assert balance["available"] == ALLOWANCE
    assert balance["withdrawable"] == 0
    assert balance["pending_deposits"] == 3 * 25_000 + (25_000 - ALLOWANCE)
    await env.assert_books()


async def test_four_deposits_started_at_once_share_the_allowance(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    redis: Redis,
    user_factory: UserFactory,
    kyc_tier: Callable[[uuid.UUID, str], Awaitable[None]],
) -> None:
    """The four DepositWorkflow activities run side by side (as on a busy worker)."""
    user = await user_factory()
    await kyc_tier(user.id, "standard")
    plaid, cipher, bank = await _bank(sessionmaker, settings, redis, user)
    made = [
        await _run(
            sessionmaker,
            lambda s: deposits.create_deposit(
                session=s, settings=settings, user_id=user.id, bank_account_id=bank, amount=25_000
            ),
        )
        for _ in range(4)
    ]

    async def start(deposit_id: uuid.UUID) -> None:
        async with sessionmaker() as s, s.begin():
            await deposits.start_deposit(
                session=s, provider=plaid, cipher=cipher, deposit_id=deposit_id
            )

    await asyncio.gather(*(start(d.id) for d in made))
    async with sessionmaker() as s:
        reads = [await service.get_deposit(session=s, deposit_id=d.id) for d in made]
        outstanding = await account_balance(
            session=s, account=user_account(user.id, "instant_credit")
        )
    assert [r.status for r in reads] == ["pending"] * 4
    assert sorted(r.instant_amount for r in reads) == [0, 0, 0, ALLOWANCE]
    assert outstanding == ALLOWANCE


async def _bank(
    maker: async_sessionmaker[AsyncSession], settings: Settings, redis: Redis, user: TestUser
) -> tuple[PlaidSandbox, FieldCipher, uuid.UUID]:
    plaid = PlaidSandbox(redis, key_seed=settings.plaid_sandbox_key_seed)
    cipher = FieldCipher(settings.field_encryption_keys)
    link = await plaid.sandbox_public_token(
        username="user_good", password="pass_good", institution_id="ins_109508"
    )
    bank = await _run(
        maker,
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
    return plaid, cipher, bank.id


# --- property: any interleaving --------------------------------------------------------------

amounts = st.integers(min_value=1, max_value=30_000)
index = st.integers(min_value=0, max_value=20)
events = st.sampled_from(["posted", "settled", "failed", "returned", "returned"])
operation = st.one_of(
    st.tuples(st.just("deposit"), amounts),
    st.tuples(st.just("deposit"), amounts),
    st.tuples(st.just("deposit_event"), index, events),
    st.tuples(st.just("withdraw"), st.integers(min_value=1, max_value=100)),
    st.tuples(st.just("withdrawal_event"), index, events),
)
# Each step runs up to four operations side by side, each in its own transaction.
step = st.lists(operation, min_size=1, max_size=4)


async def _run(
    maker: async_sessionmaker[AsyncSession], fn: Callable[[AsyncSession], Awaitable[Any]]
) -> Any:
    try:
        async with maker() as s, s.begin():
            return await fn(s)
    except AppError:
        return None


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(steps=[[("deposit", 25_000)] * 4])
@example(
    steps=[
        [("deposit", 20_000), ("deposit", 20_000)],
        [("deposit_event", 0, "returned"), ("deposit", 10_000), ("withdraw", 100)],
        [("deposit_event", 1, "settled"), ("deposit", 30_000), ("deposit", 5_000)],
    ]
)
@given(steps=st.lists(step, min_size=1, max_size=8))
async def test_outstanding_instant_credit_never_exceeds_the_allowance(
    steps: list[list[tuple[Any, ...]]],
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    redis: Redis,
    user_factory: UserFactory,
    kyc_tier: Callable[[uuid.UUID, str], Awaitable[None]],
) -> None:
    user = await user_factory()
    await kyc_tier(user.id, "standard")
    plaid, cipher, bank = await _bank(sessionmaker, settings, redis, user)
    deposit_ids: list[uuid.UUID] = []
    withdrawal_ids: list[uuid.UUID] = []

    async def deposit(amount: int) -> None:
        made = await _run(
            sessionmaker,
            lambda s: deposits.create_deposit(
                session=s, settings=settings, user_id=user.id, bank_account_id=bank, amount=amount
            ),
        )
        if made is not None:
            deposit_ids.append(made.id)
            await _run(
                sessionmaker,
                lambda s: deposits.start_deposit(
                    session=s, provider=plaid, cipher=cipher, deposit_id=made.id
                ),
            )

    async def withdraw(percent: int) -> None:
        async with sessionmaker() as s:
            withdrawable = (await get_balance(session=s, user_id=user.id)).withdrawable
        made = await _run(
            sessionmaker,
            lambda s: withdrawals.create_withdrawal(
                session=s,
                settings=settings,
                user_id=user.id,
                bank_account_id=bank,
                amount=max(100, withdrawable * percent // 100),
                speed="standard",
            ),
        )
        if made is not None:
            withdrawal_ids.append(made.id)
            await _run(
                sessionmaker,
                lambda s: withdrawals.start_withdrawal(
                    session=s, provider=plaid, cipher=cipher, withdrawal_id=made.id
                ),
            )

    def run(op: tuple[Any, ...]) -> Awaitable[Any]:
        if op[0] == "deposit":
            return deposit(op[1])
        if op[0] == "withdraw":
            return withdraw(op[1])
        if op[0] == "deposit_event" and deposit_ids:
            d = deposit_ids[op[1] % len(deposit_ids)]
            return _run(
                sessionmaker,
                lambda s: deposits.apply_deposit_event(
                    session=s, deposit_id=d, event_type=op[2], failure_reason=None
                ),
            )
        if op[0] == "withdrawal_event" and withdrawal_ids:
            w = withdrawal_ids[op[1] % len(withdrawal_ids)]
            return _run(
                sessionmaker,
                lambda s: withdrawals.apply_withdrawal_event(
                    session=s, withdrawal_id=w, event_type=op[2], failure_reason=None
                ),
            )
        return asyncio.sleep(0)

    for ops in steps:
        await asyncio.gather(*(run(op) for op in ops))
        async with sessionmaker() as s:
            outstanding = await account_balance(
                session=s, account=user_account(user.id, "instant_credit")
            )
            unsettled = await s.scalar(
                text(
                    "SELECT COALESCE(sum(instant_amount), 0) FROM deposits "
                    "WHERE user_id = :u AND status IN ('pending', 'posted')"
                ),
                {"u": user.id},
            )
            assert 0 <= outstanding <= ALLOWANCE, (ops, outstanding)
            assert outstanding == int(unsettled or 0)
            assert (await trial_balance(session=s)).balanced
