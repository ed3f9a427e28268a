"""RWA tables: assets (graded collectibles), their valuations, offerings and subscriptions.

Money and shares are not stored here: cash and shares live on the ledger (shares in a currency
per asset, `RWA<seq>`). `rwa_offerings.shares_subscribed` is the counter that keeps an offering
from ever being oversubscribed (a CHECK backs the conditional UPDATE that raises it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
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

ASSET_STATES = (
    "draft",
    "offering",
    "funded",
    "canceled",
    "locked",
    "trading",
    "buyout_vote",
    "sold",
    "distributed",
)
CATEGORIES = ("card", "comic", "watch", "sneaker", "memorabilia", "coin", "other")
OFFERING_STATUSES = ("draft", "open", "funded", "failed", "canceled")
SUBSCRIPTION_STATUSES = ("held", "issued", "voided")
VALUATION_KINDS = ("appraisal", "comparable_sale")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class RwaAsset(Base):
    __tablename__ = "rwa_assets"
    __table_args__ = (
        CheckConstraint(_in("state", ASSET_STATES), name="state"),
        CheckConstraint(_in("category", CATEGORIES), name="category"),
        CheckConstraint("insured_value_cents >= 0", name="insured_value"),
        UniqueConstraint("grader", "cert_number", name="uq_rwa_assets_grader_cert"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    # The asset's number: its share currency on the ledger is "RWA<seq>".
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    grader: Mapped[str] = mapped_column(String(10))
    cert_number: Mapped[str] = mapped_column(String(20))
    grade: Mapped[str] = mapped_column(String(20))
    # What the grader's registry answered when the certificate was verified.
    certificate: Mapped[dict[str, Any]] = mapped_column(JSONB)
    verified_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    images: Mapped[list[str]] = mapped_column(JSONB, default=list)
    custodian: Mapped[str] = mapped_column(String(100))
    vault_location: Mapped[str] = mapped_column(String(200), default="", server_default="")
    insured_value_cents: Mapped[int] = mapped_column(BigInteger)
    consignor_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    state: Mapped[str] = mapped_column(String(20), default="draft", server_default="draft")
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )

    @property
    def currency(self) -> str:
        return f"RWA{self.seq}"


class RwaValuation(Base):
    """An appraisal or a comparable sale: the asset's valuation history."""

    __tablename__ = "rwa_valuations"
    __table_args__ = (
        CheckConstraint(_in("kind", VALUATION_KINDS), name="kind"),
        CheckConstraint("value_cents > 0", name="value_positive"),
        Index("ix_rwa_valuations_asset_as_of", "asset_id", "as_of"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    asset_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("rwa_assets.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(20))
    value_cents: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    as_of: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class RwaOffering(Base):
    """A primary offering: N whole shares at a fixed price, all-or-nothing above a minimum."""

    __tablename__ = "rwa_offerings"
    __table_args__ = (
        CheckConstraint(_in("status", OFFERING_STATUSES), name="status"),
        CheckConstraint("total_shares > 0 AND price_cents > 0", name="shares_and_price"),
        CheckConstraint(
            "shares_subscribed >= 0 AND shares_subscribed <= total_shares", name="not_oversold"
        ),
        CheckConstraint("closes_at > opens_at", name="window"),
        CheckConstraint(
            "max_per_investor_bps BETWEEN 1 AND 10000 AND sourcing_fee_bps BETWEEN 0 AND 5000",
            name="bps",
        ),
        Index("ix_rwa_offerings_asset_id", "asset_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    asset_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("rwa_assets.id", ondelete="RESTRICT")
    )
    total_shares: Mapped[int] = mapped_column(BigInteger)
    price_cents: Mapped[int] = mapped_column(BigInteger)
    opens_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    closes_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    min_raise_cents: Mapped[int] = mapped_column(BigInteger)
    max_per_investor_bps: Mapped[int] = mapped_column(Integer)
    kyc_tier: Mapped[str] = mapped_column(String(20))
    sourcing_fee_bps: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default="draft", server_default="draft")
    shares_subscribed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    investors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    opened_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    canceled_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    close_reason: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # When every subscription was issued or voided (and the consignor paid, if funded).
    settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class RwaSubscription(Base):
    """One investor's subscription: its cash is a ledger hold until the offering closes."""

    __tablename__ = "rwa_subscriptions"
    __table_args__ = (
        CheckConstraint(_in("status", SUBSCRIPTION_STATUSES), name="status"),
        CheckConstraint("shares > 0 AND amount_cents > 0", name="positive"),
        Index("ix_rwa_subscriptions_offering_user", "offering_id", "user_id"),
        Index("ix_rwa_subscriptions_user_created", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    offering_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("rwa_offerings.id", ondelete="RESTRICT")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT")
    )
    shares: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), default="held", server_default="held")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class RwaInvestor(Base):
    """What one investor has subscribed to one offering (voided subscriptions excluded): the
    per-investor cap is checked on this row, in the same statement that counts a subscription
    into the offering, instead of summing the investor's subscriptions. Its row lock is what
    serializes one investor's concurrent subscriptions to one offering."""

    __tablename__ = "rwa_offering_investors"
    __table_args__ = (CheckConstraint("shares >= 0", name="shares_not_negative"),)

    offering_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("rwa_offerings.id", ondelete="RESTRICT"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT"), primary_key=True
    )
    shares: Mapped[int] = mapped_column(BigInteger)


class RwaPosition(Base):
    """A holder's cost basis in one asset (the shares themselves are on the ledger)."""

    __tablename__ = "rwa_positions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT"), primary_key=True
    )
    asset_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("rwa_assets.id", ondelete="RESTRICT"), primary_key=True
    )
    cost_basis_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


ORDER_SIDES = ("buy", "sell")
ORDER_STATUSES = ("resting", "executed", "canceled")


class RwaOrder(Base):
    """A limit order on an asset's secondary book (whole shares, price in cents per share).

    A buy's cash (quantity x limit) sits in the buyer's `held` account while it rests; a sell's
    shares sit in the `rwa.orders` escrow (the asset's share currency)."""

    __tablename__ = "rwa_orders"
    __table_args__ = (
        CheckConstraint(_in("side", ORDER_SIDES), name="side"),
        CheckConstraint(_in("status", ORDER_STATUSES), name="status"),
        CheckConstraint(_in("time_in_force", ("gtc", "ioc")), name="time_in_force"),
        CheckConstraint(
            "price_cents > 0 AND quantity > 0 AND remaining >= 0 AND remaining <= quantity",
            name="amounts",
        ),
        Index("ix_rwa_orders_book", "asset_id", "side", "price_cents", "seq"),
        Index("ix_rwa_orders_user_created", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    asset_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("rwa_assets.id", ondelete="RESTRICT")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT")
    )
    side: Mapped[str] = mapped_column(String(4))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    filled_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    time_in_force: Mapped[str] = mapped_column(String(3), default="gtc", server_default="gtc")
    status: Mapped[str] = mapped_column(String(10))
    cancel_reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class RwaTrade(Base):
    __tablename__ = "rwa_trades"
    __table_args__ = (
        CheckConstraint("price_cents > 0 AND quantity > 0", name="positive"),
        Index("ix_rwa_trades_asset_id_id", "asset_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    asset_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("rwa_assets.id", ondelete="RESTRICT")
    )
    buy_order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    sell_order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    buyer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    seller_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    price_cents: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(BigInteger)
    taker_side: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


BUYOUT_STATUSES = ("voting", "passed", "failed", "settled", "canceled")


class RwaBuyout(Base):
    """An offer to buy the whole asset, put to the holders' vote (pro rata to shares)."""

    __tablename__ = "rwa_buyouts"
    __table_args__ = (
        CheckConstraint(_in("status", BUYOUT_STATUSES), name="status"),
        CheckConstraint("price_cents > 0", name="price_positive"),
        CheckConstraint("pass_bps BETWEEN 1 AND 10000", name="pass_bps"),
        Index("ix_rwa_buyouts_asset_id", "asset_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    asset_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("rwa_assets.id", ondelete="RESTRICT")
    )
    buyer: Mapped[str] = mapped_column(String(200))
    price_cents: Mapped[int] = mapped_column(BigInteger)  # for the whole asset
    shares_outstanding: Mapped[int] = mapped_column(BigInteger)
    pass_bps: Mapped[int] = mapped_column(Integer)
    closes_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(10), default="voting", server_default="voting")
    yes_shares: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    no_shares: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    settled_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    distributed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class RwaVote(Base):
    """One holder's vote on a buyout, weighted by the shares held when voting."""

    __tablename__ = "rwa_votes"

    buyout_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("rwa_buyouts.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT"), primary_key=True
    )
    approve: Mapped[bool] = mapped_column()
    shares: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
