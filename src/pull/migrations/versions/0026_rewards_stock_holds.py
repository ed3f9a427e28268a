"""rewards: stock holds (units taken in a transaction of their own before the redemption's)

Revision ID: 0026_rewards_stock_holds
Revises: 0025_rewards_void
Create Date: 2026-12-04 19:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0026_rewards_stock_holds"
down_revision: str | None = "0025_rewards_void"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rewards_stock_holds",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("item_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_rewards_stock_holds_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["rewards_catalog.id"],
            name=op.f("fk_rewards_stock_holds_item_id_rewards_catalog"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rewards_stock_holds")),
    )
    op.create_index(
        "ix_rewards_stock_holds_item_created",
        "rewards_stock_holds",
        ["item_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_rewards_stock_holds_item_created", table_name="rewards_stock_holds")
    op.drop_table("rewards_stock_holds")
