"""rwa: per-investor subscribed shares of an offering (the cap without a scan)

Revision ID: 0024_rwa_investors
Revises: 0023_messaging
Create Date: 2026-12-02 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_rwa_investors"
down_revision: str | None = "0023_messaging"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rwa_offering_investors",
        sa.Column("offering_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("shares", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "shares >= 0", name=op.f("ck_rwa_offering_investors_shares_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["offering_id"],
            ["rwa_offerings.id"],
            name=op.f("fk_rwa_offering_investors_offering_id_rwa_offerings"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_rwa_offering_investors_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("offering_id", "user_id", name=op.f("pk_rwa_offering_investors")),
    )
    # What existing offerings' investors hold (voided subscriptions excluded).
    op.execute(
        "INSERT INTO rwa_offering_investors (offering_id, user_id, shares) "
        "SELECT offering_id, user_id, sum(shares) FROM rwa_subscriptions "
        "WHERE status <> 'voided' GROUP BY offering_id, user_id"
    )


def downgrade() -> None:
    op.drop_table("rwa_offering_investors")
