"""exchange: series, events, markets, orders, trades, fills, positions, settlements, candles

Revision ID: 0004_exchange
Revises: 0003_kyc
Create Date: 2026-11-26 21:02:11.183109
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_exchange"
down_revision: str | None = "0003_kyc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exchange_candles",
        sa.Column("market_id", sa.UUID(), nullable=False),
        sa.Column("start_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price_open", sa.Integer(), nullable=True),
        sa.Column("price_high", sa.Integer(), nullable=True),
        sa.Column("price_low", sa.Integer(), nullable=True),
        sa.Column("price_close", sa.Integer(), nullable=True),
        sa.Column("bid_open", sa.Integer(), nullable=True),
        sa.Column("bid_high", sa.Integer(), nullable=True),
        sa.Column("bid_low", sa.Integer(), nullable=True),
        sa.Column("bid_close", sa.Integer(), nullable=True),
        sa.Column("ask_open", sa.Integer(), nullable=True),
        sa.Column("ask_high", sa.Integer(), nullable=True),
        sa.Column("ask_low", sa.Integer(), nullable=True),
        sa.Column("ask_close", sa.Integer(), nullable=True),
        sa.Column("volume", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("open_interest", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("market_id", "start_ts", name=op.f("pk_exchange_candles")),
    )
    op.create_table(
        "exchange_fills",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("trade_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("market_id", sa.UUID(), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=3), nullable=False),
        sa.Column("action", sa.String(length=4), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("yes_price", sa.Integer(), nullable=False),
        sa.Column("is_taker", sa.Boolean(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_fills")),
    )
    op.create_index("ix_exchange_fills_order_id", "exchange_fills", ["order_id"], unique=False)
    op.create_index(
        "ix_exchange_fills_user_id_id", "exchange_fills", ["user_id", "id"], unique=False
    )
    op.create_table(
        "exchange_series",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("category", sa.String(length=64), server_default="", nullable=False),
        sa.Column("frequency", sa.String(length=32), server_default="", nullable=False),
        sa.Column(
            "settlement_sources",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_series")),
        sa.UniqueConstraint("ticker", name=op.f("uq_exchange_series_ticker")),
    )
    op.create_table(
        "exchange_events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=False),
        sa.Column("series_id", sa.UUID(), nullable=False),
        sa.Column("series_ticker", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("subtitle", sa.String(length=300), server_default="", nullable=False),
        sa.Column("category", sa.String(length=64), server_default="", nullable=False),
        sa.Column(
            "mutually_exclusive", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["exchange_series.id"],
            name=op.f("fk_exchange_events_series_id_exchange_series"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_events")),
        sa.UniqueConstraint("ticker", name=op.f("uq_exchange_events_ticker")),
    )
    op.create_index(
        op.f("ix_exchange_events_series_id"), "exchange_events", ["series_id"], unique=False
    )
    op.create_table(
        "exchange_markets",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_ticker", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("subtitle", sa.String(length=300), server_default="", nullable=False),
        sa.Column("yes_sub_title", sa.String(length=300), server_default="", nullable=False),
        sa.Column("no_sub_title", sa.String(length=300), server_default="", nullable=False),
        sa.Column("rules_primary", sa.Text(), server_default="", nullable=False),
        sa.Column("rules_secondary", sa.Text(), server_default="", nullable=False),
        sa.Column("category", sa.String(length=64), server_default="", nullable=False),
        sa.Column("settlement_source", sa.String(length=300), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="initialized", nullable=False),
        sa.Column("open_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("close_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expiration_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("taker_fee_bps", sa.Integer(), server_default="700", nullable=False),
        sa.Column("maker_fee_bps", sa.Integer(), server_default="0", nullable=False),
        sa.Column("tick_size", sa.Integer(), server_default="1", nullable=False),
        sa.Column("result", sa.String(length=8), nullable=True),
        sa.Column("order_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_price", sa.Integer(), nullable=True),
        sa.Column("volume", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("open_interest", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("yes_bid", sa.Integer(), nullable=True),
        sa.Column("yes_ask", sa.Integer(), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "result IS NULL OR result IN ('yes', 'no', 'void')",
            name=op.f("ck_exchange_markets_result"),
        ),
        sa.CheckConstraint(
            "status IN ('initialized', 'open', 'paused', 'closed', 'settled')",
            name=op.f("ck_exchange_markets_status"),
        ),
        sa.CheckConstraint(
            "taker_fee_bps >= 0 AND maker_fee_bps >= 0", name=op.f("ck_exchange_markets_fees")
        ),
        sa.CheckConstraint("tick_size = 1", name=op.f("ck_exchange_markets_tick")),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["exchange_events.id"],
            name=op.f("fk_exchange_markets_event_id_exchange_events"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_markets")),
        sa.UniqueConstraint("ticker", name=op.f("uq_exchange_markets_ticker")),
    )
    op.create_index(
        op.f("ix_exchange_markets_category"), "exchange_markets", ["category"], unique=False
    )
    op.create_index(
        op.f("ix_exchange_markets_event_id"), "exchange_markets", ["event_id"], unique=False
    )
    op.create_index(
        "ix_exchange_markets_status_close_time",
        "exchange_markets",
        ["status", "close_time"],
        unique=False,
    )
    op.create_table(
        "exchange_orders",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("market_id", sa.UUID(), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=3), nullable=False),
        sa.Column("action", sa.String(length=4), nullable=False),
        sa.Column("is_bid", sa.Boolean(), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("yes_price", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("time_in_force", sa.String(length=24), nullable=False),
        sa.Column("initial_count", sa.Integer(), nullable=False),
        sa.Column("remaining_count", sa.Integer(), nullable=False),
        sa.Column("fill_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expiration_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client_order_id", sa.String(length=64), nullable=True),
        sa.Column("post_only", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("buy_max_cost", sa.BigInteger(), nullable=True),
        sa.Column("self_trade_prevention_type", sa.String(length=16), nullable=False),
        sa.Column("taker_fees", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("maker_fees", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("taker_fill_cost", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("maker_fill_cost", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("taker_fee_basis", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("maker_fee_basis", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("hold_remaining", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("limit_consumed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cancel_reason", sa.String(length=32), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("action IN ('buy', 'sell')", name=op.f("ck_exchange_orders_action")),
        sa.CheckConstraint("side IN ('yes', 'no')", name=op.f("ck_exchange_orders_side")),
        sa.CheckConstraint(
            "status IN ('pending', 'resting', 'executed', 'canceled')",
            name=op.f("ck_exchange_orders_status"),
        ),
        sa.CheckConstraint("type IN ('limit', 'market')", name=op.f("ck_exchange_orders_type")),
        sa.CheckConstraint("hold_remaining >= 0", name=op.f("ck_exchange_orders_hold")),
        sa.CheckConstraint(
            "remaining_count >= 0 AND fill_count >= 0 AND fill_count + remaining_count "
            "<= initial_count",
            name=op.f("ck_exchange_orders_counts"),
        ),
        sa.CheckConstraint("yes_price BETWEEN 1 AND 99", name=op.f("ck_exchange_orders_price")),
        sa.ForeignKeyConstraint(
            ["market_id"],
            ["exchange_markets.id"],
            name=op.f("fk_exchange_orders_market_id_exchange_markets"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_exchange_orders_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_orders")),
        sa.UniqueConstraint("user_id", "client_order_id", name="uq_exchange_orders_client_order"),
    )
    op.create_index(
        "ix_exchange_orders_book",
        "exchange_orders",
        ["market_id", "is_bid", "yes_price", "seq"],
        unique=False,
        postgresql_where=sa.text("status = 'resting'"),
    )
    op.create_index(
        "ix_exchange_orders_expiring",
        "exchange_orders",
        ["expiration_ts"],
        unique=False,
        postgresql_where=sa.text("status = 'resting' AND expiration_ts IS NOT NULL"),
    )
    op.create_index(
        "ix_exchange_orders_user_created",
        "exchange_orders",
        ["user_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "exchange_positions",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("market_id", sa.UUID(), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cost_basis", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("realized_pnl", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("fees_paid", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("volume", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("sell_reserved", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("cost_basis >= 0", name=op.f("ck_exchange_positions_cost_basis")),
        sa.ForeignKeyConstraint(
            ["market_id"],
            ["exchange_markets.id"],
            name=op.f("fk_exchange_positions_market_id_exchange_markets"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("user_id", "market_id", name=op.f("pk_exchange_positions")),
    )
    op.create_index(
        "ix_exchange_positions_market_id", "exchange_positions", ["market_id"], unique=False
    )
    op.create_table(
        "exchange_settlements",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("market_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=False),
        sa.Column("result", sa.String(length=8), nullable=False),
        sa.Column("yes_count", sa.BigInteger(), nullable=False),
        sa.Column("no_count", sa.BigInteger(), nullable=False),
        sa.Column("cost_basis", sa.BigInteger(), nullable=False),
        sa.Column("revenue", sa.BigInteger(), nullable=False),
        sa.Column(
            "settled_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["market_id"],
            ["exchange_markets.id"],
            name=op.f("fk_exchange_settlements_market_id_exchange_markets"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_settlements")),
        sa.UniqueConstraint("market_id", "user_id", name="uq_exchange_settlements_market_user"),
    )
    op.create_index(
        "ix_exchange_settlements_user_id_id",
        "exchange_settlements",
        ["user_id", "id"],
        unique=False,
    )
    op.create_table(
        "exchange_trades",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("market_id", sa.UUID(), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("yes_price", sa.Integer(), nullable=False),
        sa.Column("taker_side", sa.String(length=3), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["market_id"],
            ["exchange_markets.id"],
            name=op.f("fk_exchange_trades_market_id_exchange_markets"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_trades")),
    )
    op.create_index(
        "ix_exchange_trades_market_id_id", "exchange_trades", ["market_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_exchange_trades_market_id_id", table_name="exchange_trades")
    op.drop_table("exchange_trades")
    op.drop_index("ix_exchange_settlements_user_id_id", table_name="exchange_settlements")
    op.drop_table("exchange_settlements")
    op.drop_index("ix_exchange_positions_market_id", table_name="exchange_positions")
    op.drop_table("exchange_positions")
    op.drop_index("ix_exchange_orders_user_created", table_name="exchange_orders")
    op.drop_index(
        "ix_exchange_orders_expiring",
        table_name="exchange_orders",
        postgresql_where=sa.text("status = 'resting' AND expiration_ts IS NOT NULL"),
    )
    op.drop_index(
        "ix_exchange_orders_book",
        table_name="exchange_orders",
        postgresql_where=sa.text("status = 'resting'"),
    )
    op.drop_table("exchange_orders")
    op.drop_index("ix_exchange_markets_status_close_time", table_name="exchange_markets")
    op.drop_index(op.f("ix_exchange_markets_event_id"), table_name="exchange_markets")
    op.drop_index(op.f("ix_exchange_markets_category"), table_name="exchange_markets")
    op.drop_table("exchange_markets")
    op.drop_index(op.f("ix_exchange_events_series_id"), table_name="exchange_events")
    op.drop_table("exchange_events")
    op.drop_table("exchange_series")
    op.drop_index("ix_exchange_fills_user_id_id", table_name="exchange_fills")
    op.drop_index("ix_exchange_fills_order_id", table_name="exchange_fills")
    op.drop_table("exchange_fills")
    op.drop_table("exchange_candles")
