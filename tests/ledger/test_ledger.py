"""Ledger service: transfers, idempotency, holds, balances, trial balance."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.ledger import repository
from pull.ledger.service import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidTransfer,
    Leg,
    TransferNotFound,
    TransferNotPending,
    account_balance,
    get_balance,
    post_pending,
    system_account,
    transfer,
    trial_balance,
    user_account,
    void_pending,
)
from tests.ledger.conftest import NewUser

CLEARING = system_account("bank_clearing")
FEES = system_account("fee_revenue")


def cash(user: uuid.UUID) -> object:
    return user_account(user, "cash")


async def fund(session: AsyncSession, user: uuid.UUID, amount: int, key: str | None = None) -> None:
    await transfer(
        session=session,
        idempotency_key=key or f"fund-{uuid.uuid4()}",
        kind="deposit",
        legs=[Leg(CLEARING, -amount), Leg(user_account(user, "cash"), amount)],
    )


async def test_transfer_moves_money_and_keeps_the_trial_balance(
    sessionmaker: async_sessionmaker[AsyncSession], new_user: NewUser
) -> None:
    user = await new_user()
    async with sessionmaker() as s, s.begin():
        t = await transfer(
            session=s,
            idempotency_key="dep-1",
            kind="deposit",
            legs=[Leg(CLEARING, -10_000), Leg(user_account(user, "cash"), 10_000)],
            reference="deposit:1",
            metadata={"source": "test"},
        )
    assert t.status == "posted" and not t.replayed
    assert t.amount_for(user_account(user, "cash")) == 10_000
    async with sessionmaker() as s:
        assert await account_balance(session=s, account=user_account(user, "cash")) == 10_000
        assert await account_balance(session=s, account=CLEARING) == -10_000
        b = await get_balance(session=s, user_id=user)
        assert (b.available, b.held, b.pending_deposits, b.withdrawable, b.total) == (
            10_000,
            0,
            0,
            10_000,
            10_000,
        )
        tb = await trial_balance(session=s)
    assert tb.balanced
    assert [(c.currency, c.balance) for c in tb.currencies] == [("USD", 0)]


async def test_replay_returns_the_first_result_and_other_content_conflicts(
    sessionmaker: async_sessionmaker[AsyncSession], new_user: NewUser
) -> None:
    user = await new_user()
    legs = [Leg(CLEARING, -500), Leg(user_account(user, "cash"), 500)]
    async with sessionmaker() as s, s.begin():
        first = await transfer(session=s, idempotency_key="k", kind="deposit", legs=legs)
    async with sessionmaker() as s, s.begin():
        again = await transfer(session=s, idempotency_key="k", kind="deposit", legs=legs[::-1])
        assert again.replayed and again.id == first.id
        assert set(again.legs) == set(first.legs)
        with pytest.raises(IdempotencyConflict):
            await transfer(
                session=s,
                idempotency_key="k",
                kind="deposit",
                legs=[Leg(CLEARING, -501), Leg(user_account(user, "cash"), 501)],
            )
    async with sessionmaker() as s:
        assert await account_balance(session=s, account=user_account(user, "cash")) == 500
        count = await s.scalar(text("SELECT count(*) FROM ledger_transfers"))
    assert count == 1


async def test_user_accounts_never_go_negative(
    sessionmaker: async_sessionmaker[AsyncSession], new_user: NewUser
) -> None:
    user = await new_user()
    async with sessionmaker() as s, s.begin():
        await fund(s, user, 100)
    async with sessionmaker() as s, s.begin():
        with pytest.raises(InsufficientFunds) as err:
            await transfer(
                session=s,
                idempotency_key="too-much",
                kind="withdrawal",
                legs=[Leg(user_account(user, "cash"), -101), Leg(CLEARING, 101)],
            )
        assert err.value.status_code == 409 and err.value.code == "INSUFFICIENT_FUNDS"
        # Nothing was written and the transaction is still usable.
        ok = await transfer(
            session=s,
            idempotency_key="fits",
            kind="withdrawal",
            legs=[Leg(user_account(user, "cash"), -100), Leg(CLEARING, 100)],
        )
        assert ok.status == "posted"
    async with sessionmaker() as s:
        assert await account_balance(session=s, account=user_account(user, "cash")) == 0
        assert await s.scalar(text("SELECT count(*) FROM ledger_transfers")) == 2
    # The database refuses an overdraft even if the service were bypassed.
    async with sessionmaker() as s:
        with pytest.raises(IntegrityError):
            await s.execute(
                text("UPDATE ledger_accounts SET balance = -1 WHERE owner_id = :u"), {"u": user}
            )
        await s.rollback()


async def test_system_accounts_may_go_negative_and_bad_legs_are_refused(
    sessionmaker: async_sessionmaker[AsyncSession], new_user: NewUser
) -> None:
    user = await new_user()
    async with sessionmaker() as s:
        await transfer(
            session=s,
            idempotency_key="sys",
            kind="adjustment",
            legs=[Leg(FEES, -5), Leg(system_account("rewards_pool"), 5)],
        )
        assert await account_balance(session=s, account=FEES) == -5
        for legs in (
            [Leg(CLEARING, -1), Leg(user_account(user, "cash"), 2)],
            [Leg(CLEARING, 0), Leg(user_account(user, "cash"), 0)],
            [Leg(CLEARING, -1), Leg(CLEARING, 1)],
            [Leg(user_account(user, "points", "PTS"), 5), Leg(CLEARING, -5)],
        ):
            with pytest.raises(InvalidTransfer):
                await transfer(session=s, idempotency_key="bad", kind="x", legs=legs)
        with pytest.raises(TypeError):
            Leg(CLEARING, 1.5)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            user_account(user, "savings")
        await s.rollback()


async def test_holds_reserve_debits_and_post_in_full_in_part_or_void(
    sessionmaker: async_sessionmaker[AsyncSession], new_user: NewUser
) -> None:
    user = await new_user()
    held_to = system_account("market_escrow")
    async with sessionmaker() as s, s.begin():
        await fund(s, user, 1_000)
        hold = await transfer(
            session=s,
            idempotency_key="hold-1",
            kind="order",
            legs=[Leg(user_account(user, "cash"), -600), Leg(held_to, 600)],
            pending=True,
        )
        assert hold.status == "pending"
        b = await get_balance(session=s, user_id=user)
        assert (b.available, b.held, b.total) == (400, 600, 1_000)
        # The reservation counts: 401 more is too much.
        with pytest.raises(InsufficientFunds):
            await transfer(
                session=s,
                idempotency_key="hold-2",
                kind="order",
                legs=[Leg(user_account(user, "cash"), -401), Leg(held_to, 401)],
                pending=True,
            )
        assert await account_balance(session=s, account=held_to) == 0  # credits wait for posting
        posted = await post_pending(session=s, idempotency_key="hold-1", amount=250)
        assert posted.pending_id == hold.id and posted.amount_for(held_to) == 250
        b = await get_balance(session=s, user_id=user)
        assert (b.available, b.held, b.total) == (750, 0, 750)
        again = await post_pending(session=s, transfer_id=hold.id, amount=250)
        assert again.replayed and again.id == posted.id
        with pytest.raises(TransferNotPending):
            await post_pending(session=s, transfer_id=hold.id)
        with pytest.raises(TransferNotPending):
            await void_pending(session=s, transfer_id=hold.id)

        hold3 = await transfer(
            session=s,
            idempotency_key="hold-3",
            kind="withdrawal",
            legs=[Leg(user_account(user, "cash"), -700), Leg(CLEARING, 675), Leg(FEES, 25)],
            pending=True,
        )
        with pytest.raises(InvalidTransfer):
            await post_pending(session=s, transfer_id=hold3.id, amount=10)
        voided = await void_pending(session=s, transfer_id=hold3.id)
        assert voided.status == "voided" and voided.legs == ()
        assert (await void_pending(session=s, transfer_id=hold3.id)).id == voided.id
        b = await get_balance(session=s, user_id=user)
        assert (b.available, b.held) == (750, 0)

        hold4 = await transfer(
            session=s,
            idempotency_key="hold-4",
            kind="withdrawal",
            legs=[Leg(user_account(user, "cash"), -700), Leg(CLEARING, 675), Leg(FEES, 25)],
            pending=True,
        )
        full = await post_pending(session=s, transfer_id=hold4.id)
        assert full.amount_for(FEES) == 25
        with pytest.raises(TransferNotFound):
            await post_pending(session=s, transfer_id=10**9)
        with pytest.raises(TransferNotPending):
            await post_pending(session=s, transfer_id=full.id)
        assert (await get_balance(session=s, user_id=user)).available == 50
        tb = await trial_balance(session=s)
    assert tb.balanced, tb


async def test_instant_credit_is_spendable_not_withdrawable(
    sessionmaker: async_sessionmaker[AsyncSession], new_user: NewUser
) -> None:
    user = await new_user()
    async with sessionmaker() as s, s.begin():
        await transfer(
            session=s,
            idempotency_key="dep",
            kind="deposit",
            legs=[
                Leg(CLEARING, -10_000),
                Leg(user_account(user, "pending_deposits"), 7_000),
                Leg(user_account(user, "cash"), 3_000),
                Leg(user_account(user, "instant_credit"), 3_000),
                Leg(system_account("instant_credit_issued"), -3_000),
            ],
        )
        b = await get_balance(session=s, user_id=user)
        assert (b.available, b.pending_deposits, b.withdrawable, b.total) == (
            3_000,
            7_000,
            0,
            10_000,
        )


async def test_trial_balance_sees_a_tampered_account(
    sessionmaker: async_sessionmaker[AsyncSession], new_user: NewUser
) -> None:
    user = await new_user()
    async with sessionmaker() as s, s.begin():
        await fund(s, user, 300)
        await s.execute(
            text("UPDATE ledger_accounts SET balance = balance + 1 WHERE owner_id = :u"),
            {"u": user},
        )
        tb = await trial_balance(session=s)
        assert not tb.balanced
        assert [m.entries_sum for m in tb.mismatches] == [300]
        await s.rollback()


def test_the_migration_installs_the_repository_functions() -> None:
    import importlib

    mig = importlib.import_module("pull.migrations.versions.0006_ledger")
    assert mig._APPLY_FUNCTION == repository.APPLY_FUNCTION
    assert mig._ACCOUNT_IDS_FUNCTION == repository.ACCOUNT_IDS_FUNCTION


async def test_an_unknown_owner_is_a_typed_error(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as s:
        with pytest.raises(InvalidTransfer):
            await transfer(
                session=s,
                idempotency_key="ghost",
                kind="deposit",
                legs=[Leg(CLEARING, -1), Leg(user_account(uuid.uuid4(), "cash"), 1)],
            )
        await s.rollback()
