"""KYC tables: each user's tier, the usage counted against its limits, verification
applications (PII encrypted with the field cipher) and received provider webhooks."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from pull.kit.db import Base, new_id, utcnow

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


OPEN_STATUSES = ("pending", "in_progress", "manual_review")
APPLICATION_STATUSES = (*OPEN_STATUSES, "approved", "declined", "expired", "cancelled")


class KycApplication(Base):
    """One verification attempt. PII columns hold field-cipher ciphertext, never plaintext."""

    __tablename__ = "kyc_applications"
    __table_args__ = (
        CheckConstraint(f"target_tier {TIER_CHECK}", name="target_tier"),
        CheckConstraint(
            "status IN ('pending', 'in_progress', 'manual_review', 'approved', 'declined', "
            "'expired', 'cancelled')",
            name="status",
        ),
        # At most one open attempt per user.
        Index(
            "uq_kyc_applications_open_user",
            "user_id",
            unique=True,
            postgresql_where="status IN ('pending', 'in_progress', 'manual_review')",
        ),
        Index("ix_kyc_applications_user_created", "user_id", "created_at"),
        Index("ix_kyc_applications_status_created", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    target_tier: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    # step name -> pending | running | waiting | passed | failed | review | skipped
    steps: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    first_name_enc: Mapped[str] = mapped_column(Text)
    last_name_enc: Mapped[str] = mapped_column(Text)
    dob_enc: Mapped[str] = mapped_column(Text)
    address_enc: Mapped[str] = mapped_column(Text)
    phone_enc: Mapped[str] = mapped_column(Text)
    ssn_last4_enc: Mapped[str | None] = mapped_column(Text)
    inquiry_id: Mapped[str | None] = mapped_column(String(100), index=True)
    session_token_enc: Mapped[str | None] = mapped_column(Text)
    background_check_id: Mapped[str | None] = mapped_column(String(100), index=True)
    accreditation_id: Mapped[str | None] = mapped_column(String(100), index=True)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reason: Mapped[str | None] = mapped_column(Text)
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    review_note: Mapped[str | None] = mapped_column(Text)
    retry_of: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class KycWebhookEvent(Base):
    """A verified provider webhook, stored once per (provider, event id) before it is signalled.

    The raw body is kept encrypted (vendors' payloads can carry PII)."""

    __tablename__ = "kyc_webhook_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id", name="uq_kyc_webhook_events_provider_event"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(100))
    subject_id: Mapped[str | None] = mapped_column(String(100))
    application_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    status: Mapped[str | None] = mapped_column(String(32))
    body_enc: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
