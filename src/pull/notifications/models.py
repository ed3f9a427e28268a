"""Notification tables: the notifications (the in-app inbox), one delivery row per channel,
preferences, devices for mobile push, the push sandbox's outbox, and price alerts."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from pull.kit.db import Base, TimestampMixin, new_id


class Notification(TimestampMixin, Base):
    """One thing PULL told a customer; the in-app channel is this row itself."""

    __tablename__ = "notifications"
    __table_args__ = (
        # The producer's business key (e.g. "trade:<outbox id>"): a redelivered event is one row.
        UniqueConstraint("user_id", "dedupe_key", name="uq_notifications_user_dedupe"),
        Index("ix_notifications_user_created", "user_id", "created_at", "id"),
        Index(
            "ix_notifications_unread",
            "user_id",
            postgresql_where=text("read_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    dedupe_key: Mapped[str] = mapped_column(String(200))
    read_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class NotificationDelivery(Base):
    """A notification on one channel: sent at most once per (notification, channel)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'sent', 'skipped', 'failed')", name="delivery_status"
        ),
    )

    notification_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    detail: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class NotificationPreference(Base):
    """An explicit choice for (type, channel); absent rows take the defaults in `catalog`."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    type: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)


class NotificationSettings(Base):
    """The customer's time zone and quiet hours (local wall-clock times)."""

    __tablename__ = "notification_settings"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    quiet_start: Mapped[dt.time | None] = mapped_column()
    quiet_end: Mapped[dt.time | None] = mapped_column()


class PushDevice(TimestampMixin, Base):
    __tablename__ = "notification_devices"
    __table_args__ = (
        CheckConstraint("platform IN ('fcm', 'apns')", name="device_platform"),
        UniqueConstraint("platform", "token", name="uq_notification_devices_token"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    platform: Mapped[str] = mapped_column(String(8))
    token: Mapped[str] = mapped_column(String(512))


class SandboxPush(TimestampMixin, Base):
    """What the push sandbox 'sent' (development and test), as FCM or APNs would get it."""

    __tablename__ = "notification_push_sandbox"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    platform: Mapped[str] = mapped_column(String(8))
    token: Mapped[str] = mapped_column(String(512))
    collapse_id: Mapped[str] = mapped_column(String(100), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)


class PriceAlert(TimestampMixin, Base):
    """Tell me when a market trades at or above / at or below a price; fires once."""

    __tablename__ = "price_alerts"
    __table_args__ = (
        CheckConstraint("direction IN ('above', 'below')", name="alert_direction"),
        CheckConstraint("price BETWEEN 1 AND 99", name="alert_price"),
        CheckConstraint("status IN ('active', 'triggered', 'canceled')", name="alert_status"),
        Index(
            "ix_price_alerts_active",
            "ticker",
            "direction",
            "price",
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_price_alerts_user_created", "user_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    ticker: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    price: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="active")
    triggered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    triggered_price: Mapped[int | None] = mapped_column(Integer)
