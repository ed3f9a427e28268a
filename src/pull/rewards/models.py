"""Rewards tables. Point balances live in the ledger (currency PTS); these tables hold what the
ledger does not: the lots behind a balance and their expiry, the rules, the catalog, the
redemptions and the engagement state (tiers, streaks, referrals)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from pull.kit.db import Base, new_id, utcnow

_TS = DateTime(timezone=True)


class RewardRule(Base):
    """One version of an earning rule. A change inserts a new version and closes the old one
    (`superseded_at`); lots keep the id of the version that made them."""

    __tablename__ = "rewards_rules"
    __table_args__ = (
        UniqueConstraint("key", "version", name="uq_rewards_rules_key_version"),
        Index("ix_rewards_rules_event_type", "event_type"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(100))
    formula: Mapped[dict[str, Any]] = mapped_column(JSONB)
    qualifying: Mapped[bool] = mapped_column(Boolean)
    daily_cap: Mapped[int | None] = mapped_column(BigInteger)
    lifetime_cap: Mapped[int | None] = mapped_column(BigInteger)
    expiry_days: Mapped[int | None] = mapped_column(Integer)
    starts_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    ends_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    active: Mapped[bool] = mapped_column(Boolean)
    superseded_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now(), default=utcnow)


class RewardLot(Base):
    """Points earned together, with their own expiry. `remaining` is what is still spendable;
    the sum of a user's `remaining` equals the available balance of their ledger points
    account."""

    __tablename__ = "rewards_lots"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_range"),
        Index(
            "ix_rewards_lots_spendable",
            "user_id",
            "expires_at",
            "id",
            postgresql_where=text("remaining > 0"),
        ),
        Index("ix_rewards_lots_source_ref", "source_ref"),
        Index("ix_rewards_lots_due", "expires_at", postgresql_where=text("remaining > 0")),
        Index("ix_rewards_lots_market", "market", postgresql_where=text("market IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT")
    )
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    qualifying: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(100))
    source_ref: Mapped[str | None] = mapped_column(String(200))
    rule_id: Mapped[int | None] = mapped_column(BigInteger)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    transfer_id: Mapped[int] = mapped_column(BigInteger)
    # The exchange market a trade's earning came from (reversed if that market is voided).
    market: Mapped[str | None] = mapped_column(String(100))
    earned_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(_TS)
    expired_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    reversed_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    warned_at: Mapped[dt.datetime | None] = mapped_column(_TS)


class RewardLotUse(Base):
    """Points taken from a lot: by a redemption (restored if it fails or is refunded), a
    reversal, an expiry or a negative adjustment."""

    __tablename__ = "rewards_lot_uses"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        Index("ix_rewards_lot_uses_purpose", "purpose", "purpose_ref"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    lot_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("rewards_lots.id", ondelete="RESTRICT"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(20))
    purpose_ref: Mapped[str] = mapped_column(String(200))
    points: Mapped[int] = mapped_column(BigInteger)
    restored_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    created_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now(), default=utcnow)


class RewardEvent(Base):
    """An outbox event the earning consumer has applied (at most once per event id)."""

    __tablename__ = "rewards_events"

    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    topic: Mapped[str] = mapped_column(String(100))
    points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    processed_at: Mapped[dt.datetime] = mapped_column(
        _TS, server_default=func.now(), default=utcnow
    )


class VoidedMarket(Base):
    """An exchange market resolved void: its trades' earnings were reversed, and a trade of it
    relayed later earns nothing."""

    __tablename__ = "rewards_voided_markets"

    ticker: Mapped[str] = mapped_column(String(100), primary_key=True)
    voided_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now(), default=utcnow)


class RewardRuleUsage(Base):
    """Points a user earned from a rule key (all versions): per UTC day and in total, for caps."""

    __tablename__ = "rewards_rule_usage"

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    rule_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date)
    day_points: Mapped[int] = mapped_column(BigInteger)
    lifetime_points: Mapped[int] = mapped_column(BigInteger)


class RewardItem(Base):
    __tablename__ = "rewards_catalog"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('cash_credit', 'gift_card', 'sweepstakes', 'physical')", name="kind"
        ),
        CheckConstraint("points_price > 0", name="price_positive"),
        CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))
    points_price: Mapped[int] = mapped_column(BigInteger)
    # NULL: unlimited.
    stock: Mapped[int | None] = mapped_column(BigInteger)
    starts_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    ends_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    # Gift cards: the provider's product id and the card's face value in cents.
    provider_product_id: Mapped[str | None] = mapped_column(String(100))
    face_value_cents: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        _TS, server_default=func.now(), default=utcnow, onupdate=utcnow
    )


class StockHold(Base):
    """Units taken from an item's stock in a short transaction of their own, before the
    redemption's transaction (so the item's row lock is held only inside PostgreSQL, never
    across the API's round trips). That redemption deletes its hold in its own transaction:
    committed, the units are sold; rolled back or never committed, the hold stays and is
    given back (at once by the API, or by the sweep of holds older than HOLD_MAX_AGE)."""

    __tablename__ = "rewards_stock_holds"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_rewards_stock_holds_item_created", "item_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    item_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("rewards_catalog.id", ondelete="RESTRICT")
    )
    quantity: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now())


class Redemption(Base):
    __tablename__ = "rewards_redemptions"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'fulfilled', 'failed', 'refunded')", name="status"),
        Index("ix_rewards_redemptions_user_created", "user_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT")
    )
    item_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("rewards_catalog.id", ondelete="RESTRICT")
    )
    kind: Mapped[str] = mapped_column(String(20))
    quantity: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(BigInteger)
    cash_cents: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12))
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    provider_ref: Mapped[str | None] = mapped_column(String(200))
    delivery: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        _TS, server_default=func.now(), default=utcnow, onupdate=utcnow
    )


class RewardProfile(Base):
    """A user's engagement state: tier, streak, time zone."""

    __tablename__ = "rewards_profiles"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    tier: Mapped[str] = mapped_column(String(32))
    tier_reviewed_at: Mapped[dt.datetime] = mapped_column(
        _TS, server_default=func.now(), default=utcnow
    )
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    timezone_changed_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    streak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    streak_best: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    streak_last_day: Mapped[dt.date | None] = mapped_column(Date)
    freezes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    device_fingerprints: Mapped[list[str]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    # Leaderboards show the user's display name only when this is on; otherwise an alias.
    leaderboard_public: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )


class Referral(Base):
    __tablename__ = "rewards_referrals"
    __table_args__ = (
        CheckConstraint(
            "status IN ('signed_up', 'kyc_passed', 'deposited', 'rewarded', 'refused')",
            name="status",
        ),
        Index("ix_rewards_referrals_referrer", "referrer_id", "rewarded_at"),
    )

    referee_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    referrer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(12))
    kyc_passed_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    deposited_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    rewarded_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    refusal_reason: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now(), default=utcnow)


class Adjustment(Base):
    """A manual adjustment by an administrator; above the threshold it waits for a second one."""

    __tablename__ = "rewards_adjustments"
    __table_args__ = (
        CheckConstraint("status IN ('pending_approval', 'applied', 'rejected')", name="status"),
        CheckConstraint("points <> 0", name="points_nonzero"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT")
    )
    points: Mapped[int] = mapped_column(BigInteger)
    qualifying: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    requested_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    decided_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    applied_points: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now(), default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(_TS)
