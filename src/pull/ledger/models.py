"""Ledger tables: accounts with their balances, immutable transfers and their entries.

Amounts are integer minor units (cents for USD, points for PTS), signed: a credit is positive.
An account row carries its posted `balance` and the amounts reserved by open pending transfers
(`pending_debits`, `pending_credits`, both >= 0). A user account (owner_id set) may never have
`balance - pending_debits < 0`; system accounts (owner_id NULL) may go negative.

A system account is kept as up to SYSTEM_SHARDS rows (`shard` 0..15, picked per database
connection) so that concurrent transactions crediting e.g. `fee_revenue` do not queue on one
row lock; its balance is the sum of its rows. A user account is one row (shard 0).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    SmallInteger,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from pull.kit.db import Base, utcnow


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(
            "currency IN ('USD', 'PTS') OR currency ~ '^RWA[0-9]{1,12}$'", name="currency"
        ),
        CheckConstraint("shard = 0 OR owner_id IS NULL", name="user_single_row"),
        CheckConstraint("pending_debits >= 0 AND pending_credits >= 0", name="pending_positive"),
        # The database's own guarantee that a user's account is never overdrawn.
        CheckConstraint(
            "owner_id IS NULL OR balance - pending_debits >= 0", name="user_not_negative"
        ),
        Index(
            "uq_ledger_accounts_user",
            "owner_id",
            "currency",
            "kind",
            unique=True,
            postgresql_where=text("owner_id IS NOT NULL"),
        ),
        Index(
            "uq_ledger_accounts_system",
            "currency",
            "kind",
            "shard",
            unique=True,
            postgresql_where=text("owner_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT")
    )
    # USD, PTS, or the shares of one real-world asset (RWA<n>, docs/rwa.md).
    currency: Mapped[str] = mapped_column(String(16))
    # A user account's kind (cash, held, ...) or a system account's name (fee_revenue, ...).
    kind: Mapped[str] = mapped_column(String(100))
    shard: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    pending_debits: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    pending_credits: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class LedgerTransfer(Base):
    """One money movement. Never updated, except a pending transfer's status (pending ->
    posted | voided), set by the transfer that resolves it (`pending_id` points back)."""

    __tablename__ = "ledger_transfers"
    __table_args__ = (CheckConstraint("status IN ('posted', 'pending', 'voided')", name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str | None] = mapped_column(String(200))
    # "metadata" is reserved by SQLAlchemy's declarative base; the column keeps the plain name.
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    content_hash: Mapped[str] = mapped_column(String(64))
    pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    status: Mapped[str] = mapped_column(String(10))
    pending_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_transfers.id", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class LedgerEntry(Base):
    """One leg of a transfer on one account, with the account's posted balance after it.
    Entries of a pending transfer (`pending`) reserve but do not change the posted balance."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),
        Index("ix_ledger_entries_transfer_id", "transfer_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    transfer_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ledger_transfers.id", ondelete="RESTRICT")
    )
    account_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ledger_accounts.id", ondelete="RESTRICT")
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
