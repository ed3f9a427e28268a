"""Funding rules: linking banks, reading deposits and withdrawals, and what the deposit,
withdrawal and Plaid webhook flows (`deposits`, `withdrawals`, `webhook`, which import this
module) share. Never commits.

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
import logging
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from pull.funding import repository as repo
from pull.funding.errors import (
    BankAccountNotFound,
    BankAccountUnlinked,
    DepositNotFound,
    UnknownPlaidAccount,
    WithdrawalNotFound,
)
from pull.funding.models import BankAccount, Deposit, FundingStatusChange, Withdrawal
from pull.funding.providers.base import PlaidError, PlaidProvider
from pull.funding.recovery import (
    free_collateral,
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
from pull.kit.errors import NotFound
from pull.kit.outbox import emit, signal_workflow_event
from pull.ledger import service as ledger
from pull.ledger.service import system_account, user_account

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


async def active_bank(
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


async def locked_deposit(session: AsyncSession, deposit_id: uuid.UUID) -> Deposit:
    """The deposit, locked, after its owner's funding lock (docs/money.md, lock order)."""
    user_id = await repo.subject_user(session, Deposit, deposit_id)
    if user_id is None:
        raise DepositNotFound()
    await repo.lock_user_funds(session, user_id)
    row = await repo.get(session, Deposit, deposit_id, lock=True)
    assert row is not None
    return row


async def locked_withdrawal(session: AsyncSession, withdrawal_id: uuid.UUID) -> Withdrawal:
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


def deposit_read(row: Deposit, hist: Sequence[FundingStatusChange]) -> DepositRead:
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


def withdrawal_read(row: Withdrawal, hist: Sequence[FundingStatusChange]) -> WithdrawalRead:
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
    return deposit_read(row, (await repo.history(session, [row.id]))[row.id])


async def get_withdrawal(
    *, session: AsyncSession, withdrawal_id: uuid.UUID, user_id: uuid.UUID | None = None
) -> WithdrawalRead:
    row = await repo.get(session, Withdrawal, withdrawal_id)
    if row is None or (user_id is not None and row.user_id != user_id):
        raise WithdrawalNotFound()
    return withdrawal_read(row, (await repo.history(session, [row.id]))[row.id])


async def list_deposits(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[DepositRead]:
    rows = await repo.page(session, Deposit, user_id, before=before, limit=limit)
    hist = await repo.history(session, [r.id for r in rows])
    return [deposit_read(r, hist[r.id]) for r in rows]


async def list_withdrawals(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[WithdrawalRead]:
    rows = await repo.page(session, Withdrawal, user_id, before=before, limit=limit)
    hist = await repo.history(session, [r.id for r in rows])
    return [withdrawal_read(r, hist[r.id]) for r in rows]


async def withdrawals_awaiting_approval(*, session: AsyncSession) -> list[WithdrawalRead]:
    rows = await repo.by_status(session, Withdrawal, "pending_approval", 200)
    hist = await repo.history(session, [r.id for r in rows])
    return [withdrawal_read(r, hist[r.id]) for r in rows]


# --- helpers the deposit, withdrawal and webhook flows share ------------------------------


async def legal_name(session: AsyncSession, user_id: uuid.UUID) -> str:
    user = await identity.get_user(session=session, user_id=user_id)
    if user is None:
        raise NotFound("User not found")
    return (user.display_name or user.email.split("@")[0])[:100]


async def catch_up_events(
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
            arg=signal_arg(event.event_id, event.event_type, event.payload),
        )


def signal_arg(event_id: int, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    failure = payload.get("failure_reason")
    if isinstance(failure, dict):
        failure = failure.get("description") or failure.get("ach_return_code")
    return {"event_id": event_id, "event_type": event_type, "failure_reason": failure}


async def debit_or_recover(
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


def emit_event(session: AsyncSession, topic: str, row: Deposit | Withdrawal, **extra: Any) -> None:
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


async def restrict(session: AsyncSession, user_id: uuid.UUID, shortfall: int, what: str) -> None:
    await identity.restrict_user(
        session=session, user_id=user_id, reason=restriction_reason(what, shortfall)
    )


def plaid_error_is_final(exc: PlaidError) -> bool:
    """Plaid refusals (4xx) are not retried by activities; outages are."""
    return exc.status_code < 500
