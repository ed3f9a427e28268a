"""Brokerage tables: PULL's side (accounts at the broker, orders, executions, positions,
journals, received events, the stream cursor, alerts) and the sandbox broker's own state
(`brokerage_sandbox_*`, written only by providers/sandbox.py, never joined with PULL's)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from pull.kit.db import Base, new_id, utcnow

QTY = Numeric(28, 9)
PRICE = Numeric(28, 9)


def _created() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), default=utcnow)


class BrokerageAccount(Base):
    """A customer's account at the broker, opened from their KYC data."""

    __tablename__ = "brokerage_accounts"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    broker_account_id: Mapped[str] = mapped_column(String(64), unique=True)
    account_number: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )


class BrokerageOrder(Base):
    """A customer's order; `status` follows the broker's (Alpaca's) through `states.py`."""

    __tablename__ = "brokerage_orders"
    __table_args__ = (
        UniqueConstraint("user_id", "client_order_id", name="uq_brokerage_orders_user_client"),
        CheckConstraint("side IN ('buy', 'sell')", name="side"),
        CheckConstraint("(qty IS NULL) <> (notional_cents IS NULL)", name="qty_or_notional"),
        CheckConstraint("hold_cents >= 0", name="hold_nonneg"),
        Index("ix_brokerage_orders_user_created", "user_id", "created_at", "id"),
        Index(
            "ix_brokerage_orders_open",
            "updated_at",
            postgresql_where="status NOT IN ('filled', 'canceled', 'expired', 'rejected', "
            "'replaced')",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    client_order_id: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    broker_account_id: Mapped[str] = mapped_column(String(64))
    broker_order_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    symbol: Mapped[str] = mapped_column(String(32))
    asset_class: Mapped[str] = mapped_column(String(16))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(16))
    time_in_force: Mapped[str] = mapped_column(String(8))
    qty: Mapped[Decimal | None] = mapped_column(QTY)
    notional_cents: Mapped[int | None] = mapped_column(BigInteger)
    limit_price: Mapped[Decimal | None] = mapped_column(PRICE)
    stop_price: Mapped[Decimal | None] = mapped_column(PRICE)
    status: Mapped[str] = mapped_column(String(24))
    filled_qty: Mapped[Decimal] = mapped_column(QTY, default=Decimal(0))
    filled_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    filled_avg_price: Mapped[Decimal | None] = mapped_column(PRICE)
    # the largest cumulative filled_qty the broker reported (fills beyond filled_qty not applied)
    broker_filled_qty: Mapped[Decimal] = mapped_column(QTY, default=Decimal(0))
    # The cash hold on a buy: the pending ledger transfer `<order>:hold:<hold_seq>` of hold_cents.
    hold_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    hold_seq: Mapped[int] = mapped_column(Integer, default=0)
    journaled_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    replaces_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    reject_reason: Mapped[str | None] = mapped_column(Text)
    settled: Mapped[bool] = mapped_column(Boolean, default=False)
    # the id of the last trade_bust / trade_correct applied: older events' fills are stale
    corrected_through: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class BrokerageExecution(Base):
    """One execution reported by the broker, applied at most once (by execution id)."""

    __tablename__ = "brokerage_executions"
    __table_args__ = (Index("ix_brokerage_executions_order", "order_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(String(128), unique=True)
    order_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("brokerage_orders.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    qty: Mapped[Decimal] = mapped_column(QTY)
    price: Mapped[Decimal] = mapped_column(PRICE)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    # what this execution moved (0 when an earlier cumulative report had applied it already)
    applied_qty: Mapped[Decimal] = mapped_column(QTY)
    applied_cents: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))  # stream | reconcile
    created_at: Mapped[dt.datetime] = _created()


class BrokeragePosition(Base):
    __tablename__ = "brokerage_positions"
    __table_args__ = (
        CheckConstraint("qty >= 0", name="qty_nonneg"),
        CheckConstraint("cost_cents >= 0", name="cost_nonneg"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    asset_class: Mapped[str] = mapped_column(String(16))
    qty: Mapped[Decimal] = mapped_column(QTY, default=Decimal(0))
    cost_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    realized_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class BrokerageJournal(Base):
    """Cash journaled between PULL's firm account and a customer's account at the broker."""

    __tablename__ = "brokerage_journals"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint("direction IN ('to_customer', 'to_firm')", name="direction"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    direction: Mapped[str] = mapped_column(String(12))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    broker_journal_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | executed | failed
    created_at: Mapped[dt.datetime] = _created()


class BrokerageEvent(Base):
    """A trade event received from the broker, stored once by its id."""

    __tablename__ = "brokerage_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event: Mapped[str] = mapped_column(String(32))
    broker_order_id: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[dt.datetime] = _created()


class BrokerageCursor(Base):
    """Where the trade event stream resumes (`since_id`), advanced only after applying."""

    __tablename__ = "brokerage_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class BrokerageAlert(Base):
    """A mismatch with the broker that reconciliation could not explain."""

    __tablename__ = "brokerage_alerts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = _created()


# --- the sandbox broker's own state ------------------------------------------------------------


class SandboxAccount(Base):
    __tablename__ = "brokerage_sandbox_accounts"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    account_number: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # firm | customer
    status: Mapped[str] = mapped_column(String(16))
    cash: Mapped[Decimal] = mapped_column(Numeric(28, 2), default=Decimal(0))
    contact: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[dt.datetime] = _created()


class SandboxOrder(Base):
    __tablename__ = "brokerage_sandbox_orders"
    __table_args__ = (
        UniqueConstraint("account_id", "client_order_id", name="uq_brokerage_sandbox_orders_coid"),
        Index("ix_brokerage_sandbox_orders_resting", "symbol", postgresql_where="resting"),
        Index("ix_brokerage_sandbox_orders_account", "account_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    client_order_id: Mapped[str] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(32))
    asset_class: Mapped[str] = mapped_column(String(16))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(16))
    time_in_force: Mapped[str] = mapped_column(String(8))
    qty: Mapped[Decimal | None] = mapped_column(QTY)
    notional: Mapped[Decimal | None] = mapped_column(Numeric(28, 2))
    limit_price: Mapped[Decimal | None] = mapped_column(PRICE)
    stop_price: Mapped[Decimal | None] = mapped_column(PRICE)
    status: Mapped[str] = mapped_column(String(24))
    resting: Mapped[bool] = mapped_column(Boolean, default=False)
    filled_qty: Mapped[Decimal] = mapped_column(QTY, default=Decimal(0))
    filled_notional: Mapped[Decimal] = mapped_column(Numeric(38, 18), default=Decimal(0))
    reserved_cash: Mapped[Decimal] = mapped_column(Numeric(28, 2), default=Decimal(0))
    replaced_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    replaces: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class SandboxPosition(Base):
    __tablename__ = "brokerage_sandbox_positions"

    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    asset_class: Mapped[str] = mapped_column(String(16))
    qty: Mapped[Decimal] = mapped_column(QTY, default=Decimal(0))
    cost: Mapped[Decimal] = mapped_column(Numeric(38, 18), default=Decimal(0))


class SandboxEvent(Base):
    """The sandbox's trade events; `seq` orders them (writers serialize on an advisory lock,
    so commit order is seq order and `since_id` never skips one)."""

    __tablename__ = "brokerage_sandbox_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(26), unique=True)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = _created()


class SandboxQuote(Base):
    __tablename__ = "brokerage_sandbox_quotes"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    bid: Mapped[Decimal] = mapped_column(PRICE)
    ask: Mapped[Decimal] = mapped_column(PRICE)
    bid_size: Mapped[Decimal] = mapped_column(QTY)
    ask_size: Mapped[Decimal] = mapped_column(QTY)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class SandboxJournal(Base):
    __tablename__ = "brokerage_sandbox_journals"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    from_account: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    to_account: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    amount: Mapped[Decimal] = mapped_column(Numeric(28, 2))
    status: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _created()


class SandboxState(Base):
    """Sandbox switches (the market clock override, the firm account id)."""

    __tablename__ = "brokerage_sandbox_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB)
