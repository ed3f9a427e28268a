"""Messaging tables: customers' Matrix accounts, the rooms PULL made and who is in them,
reports and mutes. Messages themselves live on the homeserver only."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from pull.kit.db import Base, TimestampMixin, new_id

ROOM_KINDS = ("market", "asset", "dm", "alerts")


class MatrixAccount(TimestampMixin, Base):
    """A customer's Matrix user; the access token is encrypted with the field cipher."""

    __tablename__ = "matrix_accounts"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    matrix_user_id: Mapped[str] = mapped_column(String(255), unique=True)
    access_token_enc: Mapped[str] = mapped_column(Text)
    device_id: Mapped[str] = mapped_column(String(64))


class MatrixServiceAccount(TimestampMixin, Base):
    """PULL's own Matrix users (the `pull` bot that owns public and alerts rooms)."""

    __tablename__ = "matrix_service_accounts"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    matrix_user_id: Mapped[str] = mapped_column(String(255), unique=True)
    access_token_enc: Mapped[str] = mapped_column(Text)


class MatrixRoom(TimestampMixin, Base):
    """A room PULL created: one per market, per asset, per pair of customers (DM), and each
    customer's alerts room; `subject` names it within its kind (ticker, asset id, ...)."""

    __tablename__ = "matrix_rooms"
    __table_args__ = (
        CheckConstraint("kind IN ('market', 'asset', 'dm', 'alerts')", name="room_kind"),
        UniqueConstraint("kind", "subject", name="uq_matrix_rooms_kind_subject"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    matrix_room_id: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))


class MatrixMember(Base):
    __tablename__ = "matrix_members"
    __table_args__ = (Index("ix_matrix_members_user_joined", "user_id", "joined_at", "room_id"),)

    room_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("matrix_rooms.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    joined_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class MessageReport(TimestampMixin, Base):
    __tablename__ = "message_reports"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'redacted', 'dismissed')", name="report_status"),
        UniqueConstraint("event_id", "reporter_id", name="uq_message_reports_event_reporter"),
        Index("ix_message_reports_status_created", "status", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    room_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("matrix_rooms.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(255))
    reporter_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")


class RoomMute(TimestampMixin, Base):
    """An admin's mute: PULL refuses the customer's sends in the room until `until`."""

    __tablename__ = "matrix_mutes"

    room_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("matrix_rooms.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    muted_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
