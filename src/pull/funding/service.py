"""Funding rules: linking banks, deposits and withdrawals, the Plaid webhook. Never commits.

Money moves only through the ledger service, each movement under an idempotency key derived
from the deposit or withdrawal id, so an activity retried any number of times moves it once:

    deposit:<id>:initiated   bank_clearing -> pending_deposits (+ instant part to cash)
    deposit:<id>:settled     pending_deposits -> cash
    deposit:<id>:reversed    failed or returned before settlement: back to bank_clearing
    deposit:<id>:returned    returned after settlement: cash (shortfall: recovery) -> clearing
    recovery:<user>:<uuid>   a later credit repays the shortfall (funding.recovery)
    withdrawal:<id>:hold     pending: cash -> bank_clearing (net) + fee_revenue (fee)
                             posted on settlement, voided on failure or rejection
    withdrawal:<id>:returned returned after completion: back to cash

Every decision about a user's money first takes that user's funding lock
(`repo.lock_user_funds`), then the deposit or withdrawal row: one lock discipline for deposits,
withdrawals and instant credit (docs/money.md, "One lock per user").
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.funding import repository as repo
from pull.funding.errors import (
    BankAccountNotFound,
    BankAccountUnlinked,
    DepositNotFound,
    InvalidAmount,
    InvalidState,
    UnknownPlaidAccount,
    WithdrawalNotFound,
)
from pull.funding.fees import Speed, withdrawal_fee
from pull.funding.models import BankAccount, Deposit, FundingStatusChange, Withdrawal
from pull.funding.providers import signing
from pull.funding.providers.base import PlaidError, PlaidProvider
from pull.funding.recovery import (
    free_collateral,
    owed,
    recover,
    recovery_account,
    restriction_reason,
)
from pull.funding.schemas import (
    BankAccountRead,
    DepositRead,
    StatusChange,
    WithdrawalRead,
)
from pull.identity import service as identity
from pull.kit.crypto import FieldCipher
from pull.kit.errors import Forbidden, NotFound
from pull.kit.outbox import emit, signal_workflow_event, start_workflow_event
from pull.kyc import service as kyc
from pull.ledger import service as ledger
from pull.ledger.service import InsufficientFunds, Leg, system_account, user_account

log = logging.getLogger("pull.funding")

CLEARING = system_account("bank_clearing")
FEES = system_account("fee_revenue")
ISSUED = system_account("instant_credit_issued")

DEPOSIT_TERMINAL = frozenset({"failed", "returned"})
DEPOSIT_RANK = {"created": 0, "pending": 1, "posted": 2, "settled": 3}
WITHDRAWAL_TERMINAL = frozenset({"failed", "returned", "rejected"})

SIGNAL = "transfer_event"
DECISION = "decision"


# --- bank accounts ------------------------------------------------------------------------------


def _bank_read(row: BankAccount) -> BankAccountRead:
    return BankAccountRead.model_validate(row)


async def link_bank_account(
    *,
    session: AsyncSession,
    provider: PlaidProvider,
    cipher: FieldCipher,
    user_id: uuid.UUID,
    public_token: str,
    account_id: str,
) -> BankAccountRead:
    item = await provider.exchange_public_token(public_token=public_token)
    try:
        accounts = await provider.get_accounts(access_token=item.access_token)
        match = next((a for a in accounts if a.account_id == account_id), None)
        if match is None:
            raise UnknownPlaidAccount(details={"accounts": [a.account_id for a in accounts]})
        row = BankAccount(
            id=uuid.uuid4(),
            user_id=user_id,
            item_id=item.item_id,
            plaid_account_id=match.account_id,
            access_token_enc=cipher.encrypt(item.access_token),
            institution_name=match.institution_name,
            name=match.name,
            mask=match.mask,
            subtype=match.subtype,
            status="active",
        )
        await repo.add(session, row)
    except BaseException:
        # The item exists at Plaid now: a link that fails after the exchange removes it, so
        # no orphaned item keeps access to the user's bank.
        try:
            await provider.remove_item(access_token=item.access_token)
        except Exception:
            log.warning("could not remove the item of a failed link", extra={"item": item.item_id})
        raise
    return _bank_read(row)


async def list_bank_accounts(*, session: AsyncSession, user_id: uuid.UUID) -> list[BankAccountRead]:
    return [_bank_read(r) for r in await repo.bank_accounts(session, user_id)]


async def remove_bank_account(
    *,
    session: AsyncSession,
    provider: PlaidProvider,
    cipher: FieldCipher,
    user_id: uuid.UUID,
    bank_account_id: uuid.UUID,
) -> None:
    """Unlink: the account is marked removed (deposits and withdrawals to it are refused from
    now on, 409 BANK_ACCOUNT_UNLINKED, including ones already created and not yet sent to
    Plaid), and Plaid's /item/remove revokes the access token once no active account of ours
    uses the item. A Plaid outage fails the unlink (nothing changes; retry)."""
    row = await repo.bank_account(session, bank_account_id, user_id)
    if row is None or row.status != "active":
        raise BankAccountNotFound()
    row.status = "removed"
    row.removed_at = dt.datetime.now(dt.UTC)
    await session.flush()
    if not await repo.item_in_use(session, row.item_id):
        await provider.remove_item(access_token=cipher.decrypt(row.access_token_enc))


async def _active_bank(
    session: AsyncSession, user_id: uuid.UUID, bank_account_id: uuid.UUID
) -> BankAccount:
    row = await repo.bank_account(session, bank_account_id, user_id)
    if row is None:
        raise BankAccountNotFound()
    if row.status != "active":
        raise BankAccountUnlinked(details={"bank_account_id": str(bank_account_id)})
    return row


UNLINKED = "BANK_ACCOUNT_UNLINKED: the bank account was unlinked"


# --- the per-user funding lock -----------------------------------------------------------------


async def _locked_deposit(session: AsyncSession, deposit_id: uuid.UUID) -> Deposit:
    """The deposit, locked, after its owner's funding lock (docs/money.md, lock order)."""
    user_id = await repo.subject_user(session, Deposit, deposit_id)
    if user_id is None:
        raise DepositNotFound()
    await repo.lock_user_funds(session, user_id)
    row = await repo.get(session, Deposit, deposit_id, lock=True)
    assert row is not None
    return row


async def _locked_withdrawal(session: AsyncSession, withdrawal_id: uuid.UUID) -> Withdrawal:
    """The withdrawal, locked, after its owner's funding lock (docs/money.md, lock order)."""
    user_id = await repo.subject_user(session, Withdrawal, withdrawal_id)
    if user_id is None:
        raise WithdrawalNotFound()
    await repo.lock_user_funds(session, user_id)
    row = await repo.get(session, Withdrawal, withdrawal_id, lock=True)
    assert row is not None
    return row


# --- reading ------------------------------------------------------------------------------------


def _history(rows: Sequence[FundingStatusChange]) -> list[StatusChange]:
    return [StatusChange(status=r.status, detail=r.detail, at=r.at) for r in rows]


def _deposit_read(row: Deposit, hist: Sequence[FundingStatusChange]) -> DepositRead:
    return DepositRead(
        id=row.id,
        amount=row.amount,
        instant_amount=row.instant_amount,
        status=row.status,
        bank_account_id=row.bank_account_id,
        failure_reason=row.failure_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
        history=_history(hist),
    )


def _withdrawal_read(row: Withdrawal, hist: Sequence[FundingStatusChange]) -> WithdrawalRead:
    return WithdrawalRead(
        id=row.id,
        amount=row.amount,
        fee=row.fee,
        net_amount=row.amount - row.fee,
        speed=row.speed,
        status=row.status,
        bank_account_id=row.bank_account_id,
        failure_reason=row.failure_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
        history=_history(hist),
    )


async def get_deposit(
    *, session: AsyncSession, deposit_id: uuid.UUID, user_id: uuid.UUID | None = None
) -> DepositRead:
    row = await repo.get(session, Deposit, deposit_id)
    if row is None or (user_id is not None and row.user_id != user_id):
        raise DepositNotFound()
    return _deposit_read(row, (await repo.history(session, [row.id]))[row.id])


async def get_withdrawal(
    *, session: AsyncSession, withdrawal_id: uuid.UUID, user_id: uuid.UUID | None = None
) -> WithdrawalRead:
    row = await repo.get(session, Withdrawal, withdrawal_id)
    if row is None or (user_id is not None and row.user_id != user_id):
        raise WithdrawalNotFound()
    return _withdrawal_read(row, (await repo.history(session, [row.id]))[row.id])


async def list_deposits(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[DepositRead]:
    rows = await repo.page(session, Deposit, user_id, before=before, limit=limit)
    hist = await repo.history(session, [r.id for r in rows])
    return [_deposit_read(r, hist[r.id]) for r in rows]


async def list_withdrawals(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[WithdrawalRead]:
    rows = await repo.page(session, Withdrawal, user_id, before=before, limit=limit)
    hist = await repo.history(session, [r.id for r in rows])
    return [_withdrawal_read(r, hist[r.id]) for r in rows]


async def withdrawals_awaiting_approval(*, session: AsyncSession) -> list[WithdrawalRead]:
    rows = await repo.by_status(session, Withdrawal, "pending_approval", 200)
    hist = await repo.history(session, [r.id for r in rows])
    return [_withdrawal_read(r, hist[r.id]) for r in rows]


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
    await _active_bank(session, user_id, bank_account_id)
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


async def _legal_name(session: AsyncSession, user_id: uuid.UUID) -> str:
    user = await identity.get_user(session=session, user_id=user_id)
    if user is None:
        raise NotFound("User not found")
    return (user.display_name or user.email.split("@")[0])[:100]


async def _catch_up_events(
    session: AsyncSession,
    subject: Literal["deposit", "withdrawal"],
    subject_id: uuid.UUID,
    transfer_id: str,
) -> None:
    """Signal events that reached us before the transfer id was recorded (see webhook)."""
    for event in await repo.events_for(session, transfer_id):
        signal_workflow_event(
            session,
            workflow_id=f"{subject}-{subject_id}",
            signal=SIGNAL,
            arg=_signal_arg(event.event_id, event.event_type, event.payload),
        )


def _signal_arg(event_id: int, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    failure = payload.get("failure_reason")
    if isinstance(failure, dict):
        failure = failure.get("description") or failure.get("ach_return_code")
    return {"event_id": event_id, "event_type": event_type, "failure_reason": failure}


async def start_deposit(
    *, session: AsyncSession, provider: PlaidProvider, cipher: FieldCipher, deposit_id: uuid.UUID
) -> str:
    """Authorize and create the Plaid debit, record the pending funds. Idempotent."""
    row = await _locked_deposit(session, deposit_id)
    if row.status != "created":
        return row.status
    bank = await repo.bank_account(session, row.bank_account_id)
    assert bank is not None
    if bank.status != "active":
        row.failure_reason = UNLINKED
        await repo.set_status(session, Deposit, row, "failed", detail=row.failure_reason)
        await kyc.release_limit(session=session, reference=f"deposit:{row.id}")
        _event(session, "funding.deposit_failed", row, reason=row.failure_reason)
        return row.status
    access_token = cipher.decrypt(bank.access_token_enc)
    authorization = await provider.authorize_transfer(
        access_token=access_token,
        account_id=bank.plaid_account_id,
        type="debit",
        amount_cents=row.amount,
        network="ach",
        legal_name=await _legal_name(session, row.user_id),
        idempotency_key=f"deposit-{row.id}",
    )
    if authorization.decision != "approved":
        reason = authorization.rationale or authorization.rationale_code or authorization.decision
        row.failure_reason = f"authorization {authorization.decision}: {reason}"
        await repo.set_status(session, Deposit, row, "failed", detail=row.failure_reason)
        await kyc.release_limit(session=session, reference=f"deposit:{row.id}")
        _event(session, "funding.deposit_failed", row, reason=row.failure_reason)
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
    await _catch_up_events(session, "deposit", row.id, transfer.id)
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


async def _debit_or_recover(
    session: AsyncSession, user_id: uuid.UUID, wanted: int
) -> tuple[int, int]:
    """(taken from the user's available cash, shortfall) for a debit of `wanted`; resting buy
    orders are canceled first if their collateral is needed (recovery.free_collateral)."""
    await free_collateral(session=session, user_id=user_id, wanted=wanted)
    available = await ledger.account_available(
        session=session, account=user_account(user_id, "cash")
    )
    taken = max(0, min(available, wanted))
    return taken, wanted - taken


def _event(session: AsyncSession, topic: str, row: Deposit | Withdrawal, **extra: Any) -> None:
    kind = "deposit" if isinstance(row, Deposit) else "withdrawal"
    emit(
        session,
        topic=topic,
        key=str(row.user_id),
        payload={
            f"{kind}_id": str(row.id),
            "user_id": str(row.user_id),
            "amount": row.amount,
            **extra,
        },
    )


async def _restrict(session: AsyncSession, user_id: uuid.UUID, shortfall: int, what: str) -> None:
    await identity.restrict_user(
        session=session, user_id=user_id, reason=restriction_reason(what, shortfall)
    )


async def apply_deposit_event(
    *, session: AsyncSession, deposit_id: uuid.UUID, event_type: str, failure_reason: str | None
) -> str:
    """Advance a deposit on a Plaid transfer event; duplicated or stale events change nothing."""
    row = await _locked_deposit(session, deposit_id)
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
        _event(session, "funding.deposit_settled", row)
        await recover(session=session, user_id=uid, trigger=f"deposit:{row.id}:settled")
    elif event_type in ("failed", "cancelled", "returned") and status != "settled":
        # Undo the pending funds; the instant part is taken back from cash where possible.
        taken, shortfall = await _debit_or_recover(session, uid, row.instant_amount)
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
            await _restrict(session, uid, shortfall, f"deposit {row.id} {final}")
        _event(session, f"funding.deposit_{final}", row, shortfall=shortfall)
    elif event_type == "returned" and status == "settled":
        taken, shortfall = await _debit_or_recover(session, uid, row.amount)
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
            await _restrict(session, uid, shortfall, f"deposit {row.id} returned")
        _event(session, "funding.deposit_returned", row, shortfall=shortfall)
    return row.status


async def fail_deposit_start(*, session: AsyncSession, deposit_id: uuid.UUID, reason: str) -> str:
    """Plaid refused to start the transfer (not retryable): nothing moved; release the limit."""
    row = await _locked_deposit(session, deposit_id)
    if row.status != "created":
        return row.status
    row.failure_reason = reason[:500]
    await repo.set_status(session, Deposit, row, "failed", detail=row.failure_reason)
    await kyc.release_limit(session=session, reference=f"deposit:{row.id}")
    _event(session, "funding.deposit_failed", row, reason=row.failure_reason)
    return row.status


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
    await _active_bank(session, user_id, bank_account_id)
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
    _event(session, f"funding.withdrawal_{status}", row, reason=reason)
    await recover(session=session, user_id=row.user_id, trigger=f"withdrawal:{row.id}:{status}")


async def decide_withdrawal(
    *,
    session: AsyncSession,
    withdrawal_id: uuid.UUID,
    admin_id: uuid.UUID,
    approve: bool,
    reason: str | None = None,
) -> WithdrawalRead:
    row = await _locked_withdrawal(session, withdrawal_id)
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
    row = await _locked_withdrawal(session, withdrawal_id)
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
        legal_name=await _legal_name(session, row.user_id),
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
    await _catch_up_events(session, "withdrawal", row.id, transfer.id)
    return row.status


async def fail_withdrawal_start(
    *, session: AsyncSession, withdrawal_id: uuid.UUID, reason: str
) -> str:
    """Plaid refused to start the transfer (not retryable): release the hold and the limit."""
    row = await _locked_withdrawal(session, withdrawal_id)
    if row.status != "approved":
        return row.status
    await _void_withdrawal(session, row, "failed", reason[:500])
    return row.status


async def apply_withdrawal_event(
    *, session: AsyncSession, withdrawal_id: uuid.UUID, event_type: str, failure_reason: str | None
) -> str:
    row = await _locked_withdrawal(session, withdrawal_id)
    status = row.status
    if event_type == "posted" and status == "processing":
        await repo.set_status(session, Withdrawal, row, "posted")
    elif event_type == "settled" and status in ("processing", "posted"):
        await ledger.post_pending(session=session, idempotency_key=f"withdrawal:{row.id}:hold")
        await repo.set_status(session, Withdrawal, row, "completed")
        _event(session, "funding.withdrawal_completed", row, fee=row.fee)
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
        _event(session, "funding.withdrawal_returned", row)
        await recover(session=session, user_id=row.user_id, trigger=f"withdrawal:{row.id}:returned")
    return row.status


# --- the Plaid webhook --------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookResult:
    received: int


async def handle_plaid_webhook(
    *,
    session: AsyncSession,
    provider: PlaidProvider,
    settings: Settings,
    body: bytes,
    verification: str | None,
) -> WebhookResult:
    """Verify (401 and nothing changes otherwise), then pull new transfer events with
    /transfer/event/sync, store each once by Plaid's event id, and signal its workflow."""

    async def fetch_key(kid: str) -> dict[str, Any]:
        return await provider.webhook_verification_key(key_id=kid)

    await signing.verify(
        verification, body, fetch_key, max_age_seconds=settings.plaid_webhook_max_age_seconds
    )
    try:
        payload = json.loads(body)
    except ValueError:
        payload = {}
    if payload.get("webhook_type") != "TRANSFER" or payload.get("webhook_code") not in (
        "TRANSFER_EVENTS_UPDATE",
    ):
        return WebhookResult(0)
    received = 0
    after_id = await repo.lock_cursor(session)  # one sync at a time
    while True:
        page = await provider.sync_transfer_events(after_id=after_id, count=100)
        for event in page.events:
            after_id = max(after_id, event.event_id)
            await repo.lock_transfer(session, event.transfer_id)
            new = await repo.store_event(
                session,
                event_id=event.event_id,
                transfer_id=event.transfer_id,
                event_type=event.event_type,
                payload=event.raw,
            )
            if not new:
                continue
            received += 1
            subject = await repo.subject_by_transfer(session, event.transfer_id)
            if subject is None:
                continue  # recorded; the activity that stores the transfer id signals it
            signal_workflow_event(
                session,
                workflow_id=f"{subject[0]}-{subject[1]}",
                signal=SIGNAL,
                arg=_signal_arg(event.event_id, event.event_type, event.raw),
            )
        if not page.has_more or not page.events:
            break
    await repo.save_cursor(session, after_id)
    return WebhookResult(received)


def plaid_error_is_final(exc: PlaidError) -> bool:
    """Plaid refusals (4xx) are not retried by activities; outages are."""
    return exc.status_code < 500
