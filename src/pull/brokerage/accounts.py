"""Broker accounts (opened after KYC standard, from the KYC data) and cash journals.

A journal moves cash at the broker between PULL's firm account and a customer's account.
It is recorded (`pending`, unique key) in PULL's transaction first and executed at the broker
after commit (`execute_journals`), so a crash leaves a pending row that the next run executes;
reconciliation compares the broker's cash with what the executed journals and fills imply.

Exactly once: Alpaca journals take no idempotency key, so PULL's key is the journal's
description, and every attempt that may not be the first (a retry by the consumer or
reconciliation, or the order request itself after `FRESH_SECONDS`) first asks the broker for a
journal with that description and takes it as executed when found. Only the order request
that recorded a funding journal sends it without asking, within `FRESH_SECONDS` of recording
it; retries leave funding journals that young alone, and the row lock keeps two executors off
one journal. So a crash after the broker executed a journal and before PULL marked it no
longer moves the cash twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.brokerage import repository as repo
from pull.brokerage.errors import BrokerAccountRequired, BrokerageUnavailable, KycDataMissing
from pull.brokerage.models import BrokerageAccount, BrokerageJournal
from pull.brokerage.money import dollars
from pull.brokerage.providers.base import Broker, BrokerError, BrokerRejected, Person
from pull.brokerage.schemas import AccountRead
from pull.kit.crypto import FieldCipher
from pull.kit.db import session_scope, utcnow
from pull.kyc import service as kyc

log = logging.getLogger("pull.brokerage")

TIERS_ALLOWED = (kyc.Tier.standard, kyc.Tier.enhanced, kyc.Tier.accredited)
FRESH_SECONDS = 10.0


def account_read(row: BrokerageAccount) -> AccountRead:
    return AccountRead(
        status=row.status,
        account_number=row.account_number,
        opened_at=row.created_at,
    )


async def get_account(*, session: AsyncSession, user_id: uuid.UUID) -> AccountRead | None:
    row = await repo.account(session, user_id)
    return account_read(row) if row else None


async def require_account(*, session: AsyncSession, user_id: uuid.UUID) -> BrokerageAccount:
    row = await repo.account(session, user_id)
    if row is None:
        raise BrokerAccountRequired()
    return row


async def open_account(
    *,
    session: AsyncSession,
    broker: Broker,
    cipher: FieldCipher,
    user_id: uuid.UUID,
    ip_address: str,
) -> tuple[AccountRead, bool]:
    """Open the user's broker account from their approved KYC data (once; a repeat returns
    the existing one). 403 KYC_REQUIRED below standard, 409 KYC_DATA_MISSING without an
    approved application. Returns (account, created)."""
    await repo.lock_user(session, user_id)
    existing = await repo.account(session, user_id)
    if existing is not None:
        return account_read(existing), False
    tier = await kyc.get_tier(session=session, user_id=user_id)
    if tier not in TIERS_ALLOWED:
        raise kyc.KycRequired(kyc.Tier.standard.value)
    person = await kyc.verified_person(session=session, user_id=user_id, cipher=cipher)
    if person is None:
        raise KycDataMissing()
    try:
        opened = await broker.create_account(
            person=Person(
                reference=str(user_id),
                email=person.email,
                given_name=person.first_name,
                family_name=person.last_name,
                date_of_birth=person.dob,
                phone=person.phone,
                street=" ".join(p for p in (person.line1, person.line2) if p),
                city=person.city,
                state=person.state,
                postal_code=person.postal_code,
                country=person.country,
                tax_id_last4=person.ssn_last4,
                ip_address=ip_address,
            )
        )
    except BrokerRejected as exc:
        raise KycDataMissing(f"The broker refused the account: {exc.message}") from exc
    except BrokerError as exc:
        raise BrokerageUnavailable() from exc
    row = BrokerageAccount(
        user_id=user_id,
        broker_account_id=opened.id,
        account_number=opened.account_number,
        status=opened.status,
    )
    repo.add(session, row)
    await repo.flush(session)
    return account_read(row), True


async def queue_journal(
    *,
    session: AsyncSession,
    key: str,
    user_id: uuid.UUID,
    direction: str,
    amount_cents: int,
    new_key: bool = False,
) -> BrokerageJournal | None:
    """Record a journal to execute after commit (once per key; nothing for 0 cents).
    `new_key`: the key names something created in this transaction (no lookup needed)."""
    if amount_cents <= 0:
        return None
    if not new_key:
        found = await repo.journal(session, key)
        if found is not None:
            return found
    row = BrokerageJournal(
        key=key,
        user_id=user_id,
        direction=direction,
        amount_cents=amount_cents,
        status="pending",
    )
    repo.add(session, row)
    await repo.flush(session)
    return row


def is_fresh(journal: BrokerageJournal) -> bool:
    return utcnow() - journal.created_at < dt.timedelta(seconds=FRESH_SECONDS)


async def execute_journal(
    *,
    session: AsyncSession,
    broker: Broker,
    journal: BrokerageJournal,
    first: bool = False,
    broker_account_id: str | None = None,
) -> None:
    """Execute one pending journal (locked) at the broker and mark it (the caller commits).

    `first`: the caller is the request that recorded it, in its first FRESH_SECONDS; any other
    attempt looks for the journal at the broker first (see the module docstring).
    `broker_account_id`: the customer's broker account, when the caller has it."""
    if journal.status != "pending":
        return
    if broker_account_id is None:
        account = await repo.account(session, journal.user_id)
        if account is None:
            journal.status = "failed"
            return
        broker_account_id = account.broker_account_id
    firm = await broker.firm_account_id()
    src, dst = (
        (firm, broker_account_id)
        if journal.direction == "to_customer"
        else (broker_account_id, firm)
    )
    if not (first and is_fresh(journal)):
        found = await broker.find_journal(
            from_account=src,
            to_account=dst,
            description=journal.key,
            since=journal.created_at.date(),
        )
        if found is not None:
            journal.status = "executed"
            journal.broker_journal_id = found.id
            return
    try:
        done = await broker.create_journal(
            from_account=src,
            to_account=dst,
            amount=dollars(journal.amount_cents),
            description=journal.key,
        )
    except BrokerRejected as exc:
        journal.status = "failed"
        repo.add_alert(
            session,
            kind="journal_failed",
            user_id=journal.user_id,
            subject=journal.key,
            details={"message": exc.message, "status": exc.status},
        )
        return
    journal.status = "executed"
    journal.broker_journal_id = done.id


async def execute_journals(
    *, maker: async_sessionmaker[AsyncSession], broker: Broker, limit: int = 100
) -> int:
    """Execute pending journals, each in its own transaction; returns how many ran."""
    count = 0
    for _ in range(limit):
        async with session_scope(maker) as session:
            rows = await repo.pending_journals(
                session,
                limit=1,
                leave_fresh_since=utcnow() - dt.timedelta(seconds=FRESH_SECONDS),
            )
            if not rows:
                break
            try:
                await execute_journal(session=session, broker=broker, journal=rows[0])
            except BrokerError as exc:
                log.warning("journal deferred", extra={"key": rows[0].key, "error": exc.message})
                break
            count += 1
    return count
