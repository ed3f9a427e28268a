"""Withdrawals: the hold on creation, the approval decision, the start at the bank, then the
bank's events; every movement under the withdrawal's keys."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.funding import repository as repo
from pull.funding.errors import (
    InvalidAmount,
    InvalidState,
)
from pull.funding.fees import Speed, withdrawal_fee
from pull.funding.models import Withdrawal
from pull.funding.providers.base import PlaidProvider
from pull.funding.recovery import (
    recover,
)
from pull.funding.schemas import (
    WithdrawalRead,
)
from pull.funding.service import (
    CLEARING,
    DECISION,
    FEES,
    UNLINKED,
    active_bank,
    catch_up_events,
    emit_event,
    get_withdrawal,
    legal_name,
    locked_withdrawal,
)
from pull.kit.crypto import FieldCipher
from pull.kit.errors import Forbidden
from pull.kit.outbox import signal_workflow_event, start_workflow_event
from pull.kyc import service as kyc
from pull.ledger import service as ledger
from pull.ledger.service import InsufficientFunds, Leg, user_account

log = logging.getLogger("pull.funding")


# --- withdrawals --------------------------------------------------------------------------------


async def create_withdrawal(
    *,
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    bank_account_id: uuid.UUID,
    amount: int,
    speed: Speed,
) -> WithdrawalRead:
    """Hold the gross amount, count it against the limits, start WithdrawalWorkflow on commit."""
    if type(amount) is not int or amount <= 0:
        raise InvalidAmount("amount is a positive number of cents")
    fee = withdrawal_fee(amount, speed)
    if amount <= fee:
        raise InvalidAmount("amount must exceed the fee", details={"fee": fee})
    # The user's funding lock: this user's deposits, instant credit and withdrawals are decided
    # one after the other, so the withdrawable check below cannot be raced.
    await repo.lock_user_funds(session, user_id)
    await active_bank(session, user_id, bank_account_id)
    await recover(session=session, user_id=user_id, trigger="withdrawal")  # debts first
    row_id = uuid.uuid4()
    await kyc.consume_limit(
        session=session,
        user_id=user_id,
        action="withdrawal",
        amount_cents=amount,
        reference=f"withdrawal:{row_id}",
    )
    balance = await ledger.get_balance(session=session, user_id=user_id)
    if balance.withdrawable < amount:
        raise InsufficientFunds(
            "Not enough withdrawable funds",
            details={"withdrawable": balance.withdrawable, "amount": amount},
        )
    needs_approval = amount > settings.withdrawal_approval_threshold_cents
    row = Withdrawal(
        id=row_id,
        user_id=user_id,
        bank_account_id=bank_account_id,
        amount=amount,
        fee=fee,
        speed=speed,
        status="pending_approval" if needs_approval else "approved",
    )
    await repo.add(session, row)
    await ledger.transfer(
        session=session,
        idempotency_key=f"withdrawal:{row.id}:hold",
        kind="withdrawal",
        legs=[
            Leg(user_account(user_id, "cash"), -amount),
            Leg(CLEARING, amount - fee),
            Leg(FEES, fee),
        ],
        reference=f"withdrawal:{row.id}",
        metadata={"fee": fee, "speed": speed},
        pending=True,
    )
    await repo.set_status(session, Withdrawal, row, row.status)
    start_workflow_event(
        session,
        workflow="WithdrawalWorkflow",
        workflow_id=f"withdrawal-{row.id}",
        arg={
            "withdrawal_id": str(row.id),
            "return_window_seconds": settings.deposit_return_window_seconds,
        },
    )
    await session.refresh(row)
    return await get_withdrawal(session=session, withdrawal_id=row.id)


async def _void_withdrawal(
    session: AsyncSession, row: Withdrawal, status: str, reason: str | None
) -> None:
    await ledger.void_pending(session=session, idempotency_key=f"withdrawal:{row.id}:hold")
    row.failure_reason = reason
    await repo.set_status(session, Withdrawal, row, status, detail=reason)
    await kyc.release_limit(session=session, reference=f"withdrawal:{row.id}")
    emit_event(session, f"funding.withdrawal_{status}", row, reason=reason)
    await recover(session=session, user_id=row.user_id, trigger=f"withdrawal:{row.id}:{status}")


async def decide_withdrawal(
    *,
    session: AsyncSession,
    withdrawal_id: uuid.UUID,
    admin_id: uuid.UUID,
    approve: bool,
    reason: str | None = None,
) -> WithdrawalRead:
    row = await locked_withdrawal(session, withdrawal_id)
    if row.user_id == admin_id:  # four eyes: another admin decides
        raise Forbidden("An administrator cannot decide their own withdrawal", code="SELF_APPROVAL")
    if row.status != "pending_approval":
        raise InvalidState(
            "Only a withdrawal awaiting approval can be approved or rejected",
            details={"status": row.status},
        )
    row.decided_by = admin_id
    row.decided_at = dt.datetime.now(dt.UTC)
    if approve:
        await repo.set_status(session, Withdrawal, row, "approved", detail=f"by {admin_id}")
    else:
        await _void_withdrawal(session, row, "rejected", reason)
    signal_workflow_event(
        session,
        workflow_id=f"withdrawal-{row.id}",
        signal=DECISION,
        arg={"approved": approve, "reason": reason},
    )
    return await get_withdrawal(session=session, withdrawal_id=row.id)


async def start_withdrawal(
    *, session: AsyncSession, provider: PlaidProvider, cipher: FieldCipher, withdrawal_id: uuid.UUID
) -> str:
    """Authorize and create the Plaid credit once approved. Idempotent."""
    row = await locked_withdrawal(session, withdrawal_id)
    if row.status != "approved":
        return row.status
    bank = await repo.bank_account(session, row.bank_account_id)
    assert bank is not None
    if bank.status != "active":
        # Refused like create_withdrawal refuses it (409 BANK_ACCOUNT_UNLINKED): the hold and
        # the limit are released, nothing is sent.
        await _void_withdrawal(session, row, "failed", UNLINKED)
        return row.status
    access_token = cipher.decrypt(bank.access_token_enc)
    net = row.amount - row.fee
    authorization = await provider.authorize_transfer(
        access_token=access_token,
        account_id=bank.plaid_account_id,
        type="credit",
        amount_cents=net,
        network="rtp" if row.speed == "instant" else "ach",
        legal_name=await legal_name(session, row.user_id),
        idempotency_key=f"withdrawal-{row.id}",
    )
    if authorization.decision != "approved":
        reason = authorization.rationale or authorization.rationale_code or authorization.decision
        await _void_withdrawal(
            session, row, "failed", f"authorization {authorization.decision}: {reason}"
        )
        return row.status
    transfer = await provider.create_transfer(
        access_token=access_token,
        account_id=bank.plaid_account_id,
        authorization_id=authorization.id,
        amount_cents=net,
        description="PULL withdrawal",
        idempotency_key=f"withdrawal-{row.id}",
    )
    await repo.lock_transfer(session, transfer.id)
    row.plaid_transfer_id = transfer.id
    await repo.set_status(
        session, Withdrawal, row, "processing", detail=f"plaid transfer {transfer.id}"
    )
    await catch_up_events(session, "withdrawal", row.id, transfer.id)
    return row.status


async def fail_withdrawal_start(
    *, session: AsyncSession, withdrawal_id: uuid.UUID, reason: str
) -> str:
    """Plaid refused to start the transfer (not retryable): release the hold and the limit."""
    row = await locked_withdrawal(session, withdrawal_id)
    if row.status != "approved":
        return row.status
    await _void_withdrawal(session, row, "failed", reason[:500])
    return row.status


async def apply_withdrawal_event(
    *, session: AsyncSession, withdrawal_id: uuid.UUID, event_type: str, failure_reason: str | None
) -> str:
    row = await locked_withdrawal(session, withdrawal_id)
    status = row.status
    if event_type == "posted" and status == "processing":
        await repo.set_status(session, Withdrawal, row, "posted")
    elif event_type == "settled" and status in ("processing", "posted"):
        await ledger.post_pending(session=session, idempotency_key=f"withdrawal:{row.id}:hold")
        await repo.set_status(session, Withdrawal, row, "completed")
        emit_event(session, "funding.withdrawal_completed", row, fee=row.fee)
    elif event_type in ("failed", "cancelled", "returned") and status in ("processing", "posted"):
        final = "returned" if event_type == "returned" else "failed"
        await _void_withdrawal(session, row, final, failure_reason or event_type)
    elif event_type == "returned" and status == "completed":
        await ledger.transfer(
            session=session,
            idempotency_key=f"withdrawal:{row.id}:returned",
            kind="withdrawal_returned",
            legs=[
                Leg(CLEARING, -(row.amount - row.fee)),
                Leg(FEES, -row.fee),
                Leg(user_account(row.user_id, "cash"), row.amount),
            ],
            reference=f"withdrawal:{row.id}",
        )
        row.failure_reason = failure_reason or "returned"
        await repo.set_status(session, Withdrawal, row, "returned", detail=row.failure_reason)
        emit_event(session, "funding.withdrawal_returned", row)
        await recover(session=session, user_id=row.user_id, trigger=f"withdrawal:{row.id}:returned")
    return row.status
