"""exchange: the published state of each market's book (seq, levels), for the live feeds

Revision ID: 0018_book_state
Revises: 0017_notifications
Create Date: 2026-12-01 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018_book_state"
down_revision: str | None = "0017_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMPTY = '\'{"yes": {}, "no": {}}\'::jsonb'


def upgrade() -> None:
    op.create_table(
        "exchange_book_state",
        sa.Column(
            "market_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("exchange_markets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("levels", postgresql.JSONB(), server_default=sa.text(EMPTY), nullable=False),
        sa.Column("last_fill_id", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="", nullable=False),
    )
    op.create_index("ix_exchange_fills_market_id_id", "exchange_fills", ["market_id", "id"])
    # Every market has its row from birth, so the first book change has a known "before".
    op.execute(
        """
        CREATE FUNCTION exchange_book_state_init() RETURNS trigger AS $$
        BEGIN
          INSERT INTO exchange_book_state (market_id, status) VALUES (NEW.id, NEW.status)
          ON CONFLICT DO NOTHING;
          RETURN NEW;
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER exchange_book_state_init AFTER INSERT ON exchange_markets "
        "FOR EACH ROW EXECUTE FUNCTION exchange_book_state_init()"
    )
    # Markets that exist already start from their current book.
    op.execute(
        """
        INSERT INTO exchange_book_state (market_id, levels, last_fill_id, status)
        SELECT m.id,
               jsonb_build_object(
                 'yes', coalesce((SELECT jsonb_object_agg(p, c) FROM (
                     SELECT yes_price::text AS p, sum(remaining_count) AS c FROM exchange_orders
                     WHERE market_id = m.id AND status = 'resting' AND is_bid
                     GROUP BY yes_price) y), '{}'::jsonb),
                 'no', coalesce((SELECT jsonb_object_agg(p, c) FROM (
                     SELECT (100 - yes_price)::text AS p, sum(remaining_count) AS c
                     FROM exchange_orders
                     WHERE market_id = m.id AND status = 'resting' AND NOT is_bid
                     GROUP BY yes_price) n), '{}'::jsonb)),
               coalesce((SELECT max(id) FROM exchange_fills f WHERE f.market_id = m.id), 0),
               m.status
        FROM exchange_markets m
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS exchange_book_state_init ON exchange_markets")
    op.execute("DROP FUNCTION IF EXISTS exchange_book_state_init()")
    op.drop_table("exchange_book_state")
    op.drop_index("ix_exchange_fills_market_id_id", table_name="exchange_fills")
