"""KYC tables: each user's tier, and the usage counted against the tier's limits."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from pull.kit.db import Base, utcnow

TIER_CHECK = "IN ('none', 'basic', 'standard', 'enhanced', 'accredited')"


class KycProfile(Base):
    """One row per user who ever had a tier; locked FOR UPDATE to serialize limit checks."""

    __tablename__ = "kyc_profiles"
    __table_args__ = (CheckConstraint(f"tier {TIER_CHECK}", name="tier"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    tier: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The tier lapses at expires_at (365 days after approval by default).
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    expiry_reminded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    approved_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )


class KycLimitUsage(Base):
    """One counted use of a limit; the reference makes a replay count once."""

    __tablename__ = "kyc_limit_usage"
    __table_args__ = (
        CheckConstraint("action IN ('deposit', 'withdrawal', 'trade')", name="action"),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint(
            "released_cents >= 0 AND released_cents <= amount_cents", name="released_range"
        ),
        Index("ix_kyc_limit_usage_user_action_created", "user_id", "action", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    action: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(200), unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    released_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )
