"""Deposits: created, started at the bank (instant credit up to the limit), then moved by the
bank's events to settled, failed or returned; every movement under the deposit's keys."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.funding import repository as repo
from pull.funding.errors import (
    InvalidAmount,
)
from pull.funding.models import Deposit
from pull.funding.providers.base import PlaidProvider
from pull.funding.recovery import (
    owed,
    recover,
    recovery_account,
)
from pull.funding.schemas import (
    DepositRead,
)
from pull.funding.service import (
    CLEARING,
    DEPOSIT_RANK,
    DEPOSIT_TERMINAL,
    ISSUED,
    UNLINKED,
    active_bank,
    catch_up_events,
    debit_or_recover,
    emit_event,
    get_deposit,
    legal_name,
    locked_deposit,
    restrict,
)
from pull.kit.crypto import FieldCipher
from pull.kit.outbox import start_workflow_event
from pull.kyc import service as kyc
from pull.ledger import service as ledger
from pull.ledger.service import Leg, user_account

log = logging.getLogger("pull.funding")


# --- deposits -----------------------------------------------------------------------------------


async def create_deposit(
    *,
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    bank_account_id: uuid.UUID,
    amount: int,
) -> DepositRead:
    """Record the deposit, count it against the KYC limits, start DepositWorkflow on commit."""
    if type(amount) is not int or amount <= 0:
        raise InvalidAmount("amount is a positive number of cents")
    await repo.lock_user_funds(session, user_id)
    await active_bank(session, user_id, bank_account_id)
    row = Deposit(
        id=uuid.uuid4(),
        user_id=user_id,
        bank_account_id=bank_account_id,
        amount=amount,
        instant_amount=0,
        status="created",
    )
    await repo.add(session, row)
    await kyc.consume_limit(
        session=session,
        user_id=user_id,
        action="deposit",
        amount_cents=amount,
        reference=f"deposit:{row.id}",
    )
    await repo.set_status(session, Deposit, row, "created")
    start_workflow_event(
        session,
        workflow="DepositWorkflow",
        workflow_id=f"deposit-{row.id}",
        arg={
            "deposit_id": str(row.id),
            "return_window_seconds": settings.deposit_return_window_seconds,
        },
    )
    await session.refresh(row)
    return await get_deposit(session=session, deposit_id=row.id)


async def start_deposit(
    *, session: AsyncSession, provider: PlaidProvider, cipher: FieldCipher, deposit_id: uuid.UUID
) -> str:
    """Authorize and create the Plaid debit, record the pending funds. Idempotent."""
    row = await locked_deposit(session, deposit_id)
    if row.status != "created":
        return row.status
    bank = await repo.bank_account(session, row.bank_account_id)
    assert bank is not None
    if bank.status != "active":
        row.failure_reason = UNLINKED
        await repo.set_status(session, Deposit, row, "failed", detail=row.failure_reason)
        await kyc.release_limit(session=session, reference=f"deposit:{row.id}")
        emit_event(session, "funding.deposit_failed", row, reason=row.failure_reason)
        return row.status
    access_token = cipher.decrypt(bank.access_token_enc)
    authorization = await provider.authorize_transfer(
        access_token=access_token,
        account_id=bank.plaid_account_id,
        type="debit",
        amount_cents=row.amount,
        network="ach",
        legal_name=await legal_name(session, row.user_id),
        idempotency_key=f"deposit-{row.id}",
    )
    if authorization.decision != "approved":
        reason = authorization.rationale or authorization.rationale_code or authorization.decision
        row.failure_reason = f"authorization {authorization.decision}: {reason}"
        await repo.set_status(session, Deposit, row, "failed", detail=row.failure_reason)
        await kyc.release_limit(session=session, reference=f"deposit:{row.id}")
        emit_event(session, "funding.deposit_failed", row, reason=row.failure_reason)
        return row.status
    transfer = await provider.create_transfer(
        access_token=access_token,
        account_id=bank.plaid_account_id,
        authorization_id=authorization.id,
        amount_cents=row.amount,
        description="PULL deposit",
        idempotency_key=f"deposit-{row.id}",
    )
    await repo.lock_transfer(session, transfer.id)
    row.plaid_transfer_id = transfer.id
    row.instant_amount = await _instant_credit(session, row.user_id, row.amount)
    instant = row.instant_amount
    legs = [Leg(CLEARING, -row.amount)]
    if row.amount - instant:
        legs.append(Leg(user_account(row.user_id, "pending_deposits"), row.amount - instant))
    if instant:
        legs += [
            Leg(user_account(row.user_id, "cash"), instant),
            Leg(user_account(row.user_id, "instant_credit"), instant),
            Leg(ISSUED, -instant),
        ]
    await ledger.transfer(
        session=session,
        idempotency_key=f"deposit:{row.id}:initiated",
        kind="deposit",
        legs=legs,
        reference=f"deposit:{row.id}",
    )
    await repo.set_status(session, Deposit, row, "pending", detail=f"plaid transfer {transfer.id}")
    await catch_up_events(session, "deposit", row.id, transfer.id)
    return row.status


async def _instant_credit(session: AsyncSession, user_id: uuid.UUID, amount: int) -> int:
    """Instant credit left for the user's KYC tier, net of what is still unsettled. The caller
    holds the user's funding lock, so no other deposit of the user is granted meanwhile."""
    if await owed(session=session, user_id=user_id):
        return 0  # no credit ahead of settlement while the user owes the house
    allowance = await kyc.instant_credit_cents(session=session, user_id=user_id)
    outstanding = await ledger.account_balance(
        session=session, account=user_account(user_id, "instant_credit")
    )
    return max(0, min(amount, allowance - outstanding))


async def apply_deposit_event(
    *, session: AsyncSession, deposit_id: uuid.UUID, event_type: str, failure_reason: str | None
) -> str:
    """Advance a deposit on a Plaid transfer event; duplicated or stale events change nothing."""
    row = await locked_deposit(session, deposit_id)
    status = row.status
    if status in DEPOSIT_TERMINAL or status == "created":
        return status
    rank = DEPOSIT_RANK[status]
    pending_part = row.amount - row.instant_amount
    uid = row.user_id
    if event_type == "posted" and rank < DEPOSIT_RANK["posted"]:
        await repo.set_status(session, Deposit, row, "posted")
    elif event_type == "settled" and rank < DEPOSIT_RANK["settled"]:
        legs = []
        if pending_part:
            legs += [
                Leg(user_account(uid, "pending_deposits"), -pending_part),
                Leg(user_account(uid, "cash"), pending_part),
            ]
        if row.instant_amount:
            legs += [
                Leg(user_account(uid, "instant_credit"), -row.instant_amount),
                Leg(ISSUED, row.instant_amount),
            ]
        await ledger.transfer(
            session=session,
            idempotency_key=f"deposit:{row.id}:settled",
            kind="deposit_settled",
            legs=legs,
            reference=f"deposit:{row.id}",
        )
        await repo.set_status(session, Deposit, row, "settled")
        emit_event(session, "funding.deposit_settled", row)
        await recover(session=session, user_id=uid, trigger=f"deposit:{row.id}:settled")
    elif event_type in ("failed", "cancelled", "returned") and status != "settled":
        # Undo the pending funds; the instant part is taken back from cash where possible.
        taken, shortfall = await debit_or_recover(session, uid, row.instant_amount)
        legs = [Leg(CLEARING, row.amount)]
        if pending_part:
            legs.append(Leg(user_account(uid, "pending_deposits"), -pending_part))
        if row.instant_amount:
            legs += [
                Leg(user_account(uid, "instant_credit"), -row.instant_amount),
                Leg(ISSUED, row.instant_amount),
            ]
        if taken:
            legs.append(Leg(user_account(uid, "cash"), -taken))
        if shortfall:
            legs.append(Leg(recovery_account(uid), -shortfall))
        await ledger.transfer(
            session=session,
            idempotency_key=f"deposit:{row.id}:reversed",
            kind="deposit_reversed",
            legs=legs,
            reference=f"deposit:{row.id}",
        )
        final = "returned" if event_type == "returned" else "failed"
        row.failure_reason = failure_reason or event_type
        await repo.set_status(session, Deposit, row, final, detail=row.failure_reason)
        await kyc.release_limit(session=session, reference=f"deposit:{row.id}")
        if shortfall:
            await restrict(session, uid, shortfall, f"deposit {row.id} {final}")
        emit_event(session, f"funding.deposit_{final}", row, shortfall=shortfall)
    elif event_type == "returned" and status == "settled":
        taken, shortfall = await debit_or_recover(session, uid, row.amount)
        legs = [Leg(CLEARING, row.amount)]
        if taken:
            legs.append(Leg(user_account(uid, "cash"), -taken))
        if shortfall:
            legs.append(Leg(recovery_account(uid), -shortfall))
        await ledger.transfer(
            session=session,
            idempotency_key=f"deposit:{row.id}:returned",
            kind="deposit_returned",
            legs=legs,
            reference=f"deposit:{row.id}",
        )
        row.failure_reason = failure_reason or "returned"
        await repo.set_status(session, Deposit, row, "returned", detail=row.failure_reason)
        if shortfall:
            await restrict(session, uid, shortfall, f"deposit {row.id} returned")
        emit_event(session, "funding.deposit_returned", row, shortfall=shortfall)
    return row.status


async def fail_deposit_start(*, session: AsyncSession, deposit_id: uuid.UUID, reason: str) -> str:
    """Plaid refused to start the transfer (not retryable): nothing moved; release the limit."""
    row = await locked_deposit(session, deposit_id)
    if row.status != "created":
        return row.status
    row.failure_reason = reason[:500]
    await repo.set_status(session, Deposit, row, "failed", detail=row.failure_reason)
    await kyc.release_limit(session=session, reference=f"deposit:{row.id}")
    emit_event(session, "funding.deposit_failed", row, reason=row.failure_reason)
    return row.status
