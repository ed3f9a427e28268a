"""phone: phone verifications, the SMS sandbox's outbox, one verified number per account

Revision ID: 0008_phone
Revises: 0007_funding
Create Date: 2026-12-01 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_phone"
down_revision: str | None = "0007_funding"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbound_sms",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("to_number", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_sms")),
    )
    op.create_index(op.f("ix_outbound_sms_to_number"), "outbound_sms", ["to_number"])
    op.create_table(
        "phone_verifications",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("provider_ref", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'failed', 'canceled')",
            name=op.f("ck_phone_verifications_status"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_phone_verifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_verifications")),
    )
    op.create_index(
        "ix_phone_verifications_user_id_created_at",
        "phone_verifications",
        ["user_id", "created_at"],
    )
    op.create_index(
        "ix_phone_verifications_phone_created_at",
        "phone_verifications",
        ["phone", "created_at"],
    )
    op.create_index(
        "uq_users_phone_verified",
        "users",
        ["phone"],
        unique=True,
        postgresql_where=sa.text("phone_verified_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_users_phone_verified", table_name="users")
    op.drop_index("ix_phone_verifications_phone_created_at", table_name="phone_verifications")
    op.drop_index("ix_phone_verifications_user_id_created_at", table_name="phone_verifications")
    op.drop_table("phone_verifications")
    op.drop_index(op.f("ix_outbound_sms_to_number"), table_name="outbound_sms")
    op.drop_table("outbound_sms")
