"""portfolio: valuation points (end of day and intraday) per customer

Revision ID: 0016_portfolio
Revises: 0015_rewards_privacy
Create Date: 2026-12-01 23:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_portfolio"
down_revision: str | None = "0015_rewards_privacy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portfolio_snapshots",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("equity", sa.BigInteger(), nullable=False),
        sa.Column("cash", sa.BigInteger(), nullable=False),
        sa.Column("holdings", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("net_deposits", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("kind IN ('eod', 'intraday')", name=op.f("ck_portfolio_snapshots_kind")),
        sa.PrimaryKeyConstraint("user_id", "kind", "at", name=op.f("pk_portfolio_snapshots")),
    )
    op.create_index("ix_portfolio_snapshots_kind_at", "portfolio_snapshots", ["kind", "at"])


def downgrade() -> None:
    op.drop_index("ix_portfolio_snapshots_kind_at", table_name="portfolio_snapshots")
    op.drop_table("portfolio_snapshots")
