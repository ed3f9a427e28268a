"""Exchange tables: series -> events -> markets, orders, fills, trades, positions, settlements.

Prices are integer cents in YES-price space (1-99); counts are whole contracts; money is cents.
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

from pull.kit.db import Base, TimestampMixin, new_id, utcnow


class Series(TimestampMixin, Base):
    __tablename__ = "exchange_series"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    ticker: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(64), default="", server_default="")
    frequency: Mapped[str] = mapped_column(String(32), default="", server_default="")
    settlement_sources: Mapped[list[Any]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    tags: Mapped[list[Any]] = mapped_column(JSONB, default=list, server_default=text("'[]'::jsonb"))


class Event(TimestampMixin, Base):
    __tablename__ = "exchange_events"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    ticker: Mapped[str] = mapped_column(String(64), unique=True)
    series_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("exchange_series.id", ondelete="RESTRICT"), index=True
    )
    series_ticker: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    subtitle: Mapped[str] = mapped_column(String(300), default="", server_default="")
    category: Mapped[str] = mapped_column(String(64), default="", server_default="")
    mutually_exclusive: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )


class Market(TimestampMixin, Base):
    __tablename__ = "exchange_markets"
    __table_args__ = (
        CheckConstraint(
            "status IN ('initialized', 'open', 'paused', 'closed', 'settled')", name="status"
        ),
        CheckConstraint("result IS NULL OR result IN ('yes', 'no', 'void')", name="result"),
        CheckConstraint("tick_size = 1", name="tick"),
        CheckConstraint("taker_fee_bps >= 0 AND maker_fee_bps >= 0", name="fees"),
        Index("ix_exchange_markets_status_close_time", "status", "close_time"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    ticker: Mapped[str] = mapped_column(String(64), unique=True)
    event_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("exchange_events.id", ondelete="RESTRICT"), index=True
    )
    event_ticker: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    subtitle: Mapped[str] = mapped_column(String(300), default="", server_default="")
    yes_sub_title: Mapped[str] = mapped_column(String(300), default="", server_default="")
    no_sub_title: Mapped[str] = mapped_column(String(300), default="", server_default="")
    rules_primary: Mapped[str] = mapped_column(Text, default="", server_default="")
    rules_secondary: Mapped[str] = mapped_column(Text, default="", server_default="")
    category: Mapped[str] = mapped_column(String(64), default="", server_default="", index=True)
    settlement_source: Mapped[str] = mapped_column(String(300), default="", server_default="")
    status: Mapped[str] = mapped_column(
        String(16), default="initialized", server_default="initialized"
    )
    open_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    close_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expiration_time: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Fee schedule in basis points of C x P x (1 - P): Kalshi's general taker rate is 0.07.
    taker_fee_bps: Mapped[int] = mapped_column(Integer, default=700, server_default="700")
    maker_fee_bps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tick_size: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    result: Mapped[str | None] = mapped_column(String(8))
    # Order sequence for time priority: bumped under the market's row lock at every placement.
    order_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_price: Mapped[int | None] = mapped_column(Integer)
    volume: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    open_interest: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    yes_bid: Mapped[int | None] = mapped_column(Integer)
    yes_ask: Mapped[int | None] = mapped_column(Integer)
    settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )


class Order(Base):
    __tablename__ = "exchange_orders"
    __table_args__ = (
        CheckConstraint("side IN ('yes', 'no')", name="side"),
        CheckConstraint("action IN ('buy', 'sell')", name="action"),
        CheckConstraint("type IN ('limit', 'market')", name="type"),
        CheckConstraint("status IN ('pending', 'resting', 'executed', 'canceled')", name="status"),
        CheckConstraint("yes_price BETWEEN 1 AND 99", name="price"),
        CheckConstraint(
            "remaining_count >= 0 AND fill_count >= 0 AND fill_count + remaining_count "
            "<= initial_count",
            name="counts",
        ),
        CheckConstraint("hold_remaining >= 0", name="hold"),
        UniqueConstraint("user_id", "client_order_id", name="uq_exchange_orders_client_order"),
        # The book: resting orders of a market by side, price and time.
        Index(
            "ix_exchange_orders_book",
            "market_id",
            "is_bid",
            "yes_price",
            "seq",
            postgresql_where=text("status = 'resting'"),
        ),
        Index("ix_exchange_orders_user_created", "user_id", "created_at"),
        Index(
            "ix_exchange_orders_expiring",
            "expiration_ts",
            postgresql_where=text("status = 'resting' AND expiration_ts IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    seq: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT")
    )
    market_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("exchange_markets.id", ondelete="RESTRICT")
    )
    ticker: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(3))
    action: Mapped[str] = mapped_column(String(4))
    # True for buy YES / sell NO (a bid in YES-price space), False for sell YES / buy NO.
    is_bid: Mapped[bool] = mapped_column(Boolean)
    type: Mapped[str] = mapped_column(String(8))
    yes_price: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10))
    time_in_force: Mapped[str] = mapped_column(String(24))
    initial_count: Mapped[int] = mapped_column(Integer)
    remaining_count: Mapped[int] = mapped_column(Integer)
    fill_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    expiration_ts: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    client_order_id: Mapped[str | None] = mapped_column(String(64))
    post_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    reduce_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    buy_max_cost: Mapped[int | None] = mapped_column(BigInteger)
    self_trade_prevention_type: Mapped[str] = mapped_column(String(16))
    taker_fees: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    maker_fees: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    taker_fill_cost: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    maker_fill_cost: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Fee accumulators: sum of count x P x (100 - P) over the order's taker / maker fills.
    taker_fee_basis: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    maker_fee_basis: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Cents of the user's held balance backing this order's unfilled part.
    hold_remaining: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Cents of the user's KYC trading limit this order consumed (given back as it is canceled).
    limit_consumed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cancel_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class Trade(Base):
    """The public tape: one row per match between a taker and one resting order."""

    __tablename__ = "exchange_trades"
    __table_args__ = (Index("ix_exchange_trades_market_id_id", "market_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    market_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("exchange_markets.id", ondelete="RESTRICT")
    )
    ticker: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)
    yes_price: Mapped[int] = mapped_column(Integer)
    taker_side: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class Fill(Base):
    """One side of a trade, as its user sees it."""

    __tablename__ = "exchange_fills"
    __table_args__ = (
        Index("ix_exchange_fills_user_id_id", "user_id", "id"),
        Index("ix_exchange_fills_order_id", "order_id"),
        # a book command's new fills in its market (pull.exchange.book_events)
        Index("ix_exchange_fills_market_id_id", "market_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    trade_id: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    market_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    ticker: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(3))
    action: Mapped[str] = mapped_column(String(4))
    count: Mapped[int] = mapped_column(Integer)
    yes_price: Mapped[int] = mapped_column(Integer)
    is_taker: Mapped[bool] = mapped_column(Boolean)
    fee: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class Position(Base):
    """A user's signed position in one market: YES contracts > 0, NO contracts < 0."""

    __tablename__ = "exchange_positions"
    __table_args__ = (
        Index("ix_exchange_positions_market_id", "market_id"),
        CheckConstraint("cost_basis >= 0", name="cost_basis"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    market_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("exchange_markets.id", ondelete="RESTRICT"),
        primary_key=True,
    )
    ticker: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Cents paid for the contracts now held (FIFO-free average cost: cost_basis / |position|).
    cost_basis: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    realized_pnl: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    fees_paid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    volume: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Contracts promised to the user's resting sell orders (a sell can only sell what is held).
    sell_reserved: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class Settlement(Base):
    __tablename__ = "exchange_settlements"
    __table_args__ = (
        UniqueConstraint("market_id", "user_id", name="uq_exchange_settlements_market_user"),
        Index("ix_exchange_settlements_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    market_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("exchange_markets.id", ondelete="RESTRICT")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    ticker: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(8))
    yes_count: Mapped[int] = mapped_column(BigInteger)
    no_count: Mapped[int] = mapped_column(BigInteger)
    cost_basis: Mapped[int] = mapped_column(BigInteger)
    revenue: Mapped[int] = mapped_column(BigInteger)
    settled_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class Candle(Base):
    """One minute of a market: OHLC of trade prices and of the best YES bid and ask."""

    __tablename__ = "exchange_candles"

    market_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    start_ts: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    price_open: Mapped[int | None] = mapped_column(Integer)
    price_high: Mapped[int | None] = mapped_column(Integer)
    price_low: Mapped[int | None] = mapped_column(Integer)
    price_close: Mapped[int | None] = mapped_column(Integer)
    bid_open: Mapped[int | None] = mapped_column(Integer)
    bid_high: Mapped[int | None] = mapped_column(Integer)
    bid_low: Mapped[int | None] = mapped_column(Integer)
    bid_close: Mapped[int | None] = mapped_column(Integer)
    ask_open: Mapped[int | None] = mapped_column(Integer)
    ask_high: Mapped[int | None] = mapped_column(Integer)
    ask_low: Mapped[int | None] = mapped_column(Integer)
    ask_close: Mapped[int | None] = mapped_column(Integer)
    volume: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    open_interest: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class BookState(Base):
    """The last published state of a market's book: the levels as of `seq`, so that each book
    command publishes exactly what it changed (pull.exchange.book_events). One row per market,
    made by a trigger when the market is created; locked by the book command that updates it,
    after the market row, so `seq` follows commit order."""

    __tablename__ = "exchange_book_state"

    market_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("exchange_markets.id", ondelete="CASCADE"),
        primary_key=True,
    )
    seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # {"yes": {"<yes bid price>": count}, "no": {"<no bid price>": count}}
    levels: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text('\'{"yes": {}, "no": {}}\'::jsonb')
    )
    last_fill_id: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(16), default="", server_default="")
