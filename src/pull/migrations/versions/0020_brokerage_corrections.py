"""brokerage: orders remember the last trade correction applied (trade_bust / trade_correct)

Revision ID: 0020_brokerage_corrections
Revises: 0019_portfolio_statements
Create Date: 2026-12-02 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_brokerage_corrections"
down_revision: str | None = "0019_portfolio_statements"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("brokerage_orders", sa.Column("corrected_through", sa.String(32)))


def downgrade() -> None:
    op.drop_column("brokerage_orders", "corrected_through")
