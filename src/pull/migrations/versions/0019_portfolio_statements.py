"""portfolio: monthly statements (PDF and CSV) per customer

Revision ID: 0019_portfolio_statements
Revises: 0018_book_state
Create Date: 2026-12-01 23:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_portfolio_statements"
down_revision: str | None = "0018_book_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portfolio_statements",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("csv", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_portfolio_statements_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portfolio_statements")),
    )
    op.create_index(
        "uq_portfolio_statements_user_month",
        "portfolio_statements",
        ["user_id", "month"],
        unique=True,
    )
    op.create_index(
        "ix_portfolio_statements_user_created",
        "portfolio_statements",
        ["user_id", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_portfolio_statements_user_created", table_name="portfolio_statements")
    op.drop_index("uq_portfolio_statements_user_month", table_name="portfolio_statements")
    op.drop_table("portfolio_statements")
