"""Portfolio tables: valuation points (end of day and intraday) and monthly statements."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from pull.kit.db import Base, new_id, utcnow


class PortfolioSnapshot(Base):
    """A customer's value at one instant. `eod` points are taken at the end of each UTC day
    (`at` = 00:00 of the next day), `intraday` points every few minutes; one per
    (user, kind, at), so a rerun of a batch writes nothing twice.

    `net_deposits` is cumulative (money in minus money out through funding, up to `at`): the
    cash flow between two points is their difference, which the time-weighted return removes."""

    __tablename__ = "portfolio_snapshots"
    __table_args__ = (
        CheckConstraint("kind IN ('eod', 'intraday')", name="kind"),
        Index("ix_portfolio_snapshots_kind_at", "kind", "at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    equity: Mapped[int] = mapped_column(BigInteger)
    cash: Mapped[int] = mapped_column(BigInteger)
    holdings: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    net_deposits: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class PortfolioStatement(Base):
    """One customer's monthly statement: the PDF and the CSV of the month's transactions.
    One per (user, month): a rerun of the statements workflow writes nothing twice."""

    __tablename__ = "portfolio_statements"
    __table_args__ = (
        Index("uq_portfolio_statements_user_month", "user_id", "month", unique=True),
        Index("ix_portfolio_statements_user_created", "user_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT")
    )
    month: Mapped[str] = mapped_column(String(7))
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    csv: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
