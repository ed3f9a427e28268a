"""rewards: the market of a trade's earning, and voided markets (their trades' points reversed)

Revision ID: 0025_rewards_void
Revises: 0024_rwa_investors
Create Date: 2026-12-02 04:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025_rewards_void"
down_revision: str | None = "0024_rwa_investors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("rewards_lots", sa.Column("market", sa.String(length=100), nullable=True))
    op.create_index(
        "ix_rewards_lots_market",
        "rewards_lots",
        ["market"],
        unique=False,
        postgresql_where=sa.text("market IS NOT NULL"),
    )
    op.create_table(
        "rewards_voided_markets",
        sa.Column("ticker", sa.String(length=100), nullable=False),
        sa.Column(
            "voided_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("ticker", name=op.f("pk_rewards_voided_markets")),
    )


def downgrade() -> None:
    op.drop_table("rewards_voided_markets")
    op.drop_index(
        "ix_rewards_lots_market",
        table_name="rewards_lots",
        postgresql_where=sa.text("market IS NOT NULL"),
    )
    op.drop_column("rewards_lots", "market")
