"""Funding tables: linked bank accounts, deposits, withdrawals, their status history, and the
Plaid transfer events received (deduplicated by Plaid's event id)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from pull.kit.db import Base, TimestampMixin, new_id, utcnow

DEPOSIT_STATUSES = ("created", "pending", "posted", "settled", "failed", "returned")
WITHDRAWAL_STATUSES = (
    "pending_approval",
    "approved",
    "processing",
    "posted",
    "completed",
    "rejected",
    "failed",
    "returned",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class BankAccount(TimestampMixin, Base):
    __tablename__ = "bank_accounts"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'removed')", name="status"),
        Index("ix_bank_accounts_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    item_id: Mapped[str] = mapped_column(String(100))
    plaid_account_id: Mapped[str] = mapped_column(String(100))
    # Fernet ciphertext of the Plaid access token (pull.kit.crypto.FieldCipher).
    access_token_enc: Mapped[str] = mapped_column(Text)
    institution_name: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    mask: Mapped[str | None] = mapped_column(String(10))
    subtype: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(10), default="active", server_default="active")
    removed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Deposit(TimestampMixin, Base):
    __tablename__ = "deposits"
    __table_args__ = (
        CheckConstraint(_in("status", DEPOSIT_STATUSES), name="status"),
        CheckConstraint(
            "amount > 0 AND instant_amount >= 0 AND instant_amount <= amount", name="amounts"
        ),
        Index("ix_deposits_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT")
    )
    bank_account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("bank_accounts.id", ondelete="RESTRICT")
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    # Part credited to cash before settlement (spendable, not withdrawable until settled).
    instant_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(16), default="created", server_default="created")
    plaid_transfer_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )


class Withdrawal(TimestampMixin, Base):
    __tablename__ = "withdrawals"
    __table_args__ = (
        CheckConstraint(_in("status", WITHDRAWAL_STATUSES), name="status"),
        CheckConstraint("speed IN ('standard', 'instant')", name="speed"),
        CheckConstraint("amount > 0 AND fee >= 0 AND fee < amount", name="amounts"),
        Index("ix_withdrawals_user_id_created_at", "user_id", "created_at"),
        Index("ix_withdrawals_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT")
    )
    bank_account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("bank_accounts.id", ondelete="RESTRICT")
    )
    amount: Mapped[int] = mapped_column(BigInteger)  # gross, held from cash
    fee: Mapped[int] = mapped_column(BigInteger)
    speed: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    plaid_transfer_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )


class FundingStatusChange(Base):
    """Every status a deposit or withdrawal went through, in order."""

    __tablename__ = "funding_status_history"
    __table_args__ = (
        CheckConstraint("subject_type IN ('deposit', 'withdrawal')", name="subject_type"),
        Index("ix_funding_status_history_subject", "subject_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    subject_type: Mapped[str] = mapped_column(String(10))
    subject_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class PlaidTransferEvent(Base):
    """A Plaid transfer event as received (raw), once per Plaid event id."""

    __tablename__ = "plaid_transfer_events"

    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    transfer_id: Mapped[str] = mapped_column(String(100), index=True)
    event_type: Mapped[str] = mapped_column(String(30))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class PlaidCursor(Base):
    """Where /transfer/event/sync left off (one row)."""

    __tablename__ = "plaid_event_cursor"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    after_id: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
