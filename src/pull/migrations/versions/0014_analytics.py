"""analytics: inbox of client events (track/identify) and the outbox reader's cursor

Revision ID: 0014_analytics
Revises: 0013_api_keys
Create Date: 2026-12-01 20:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014_analytics"
down_revision: str | None = "0013_api_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_inbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_inbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_analytics_inbox_message_id")),
    )
    op.create_index(
        "ix_analytics_inbox_pending",
        "analytics_inbox",
        ["id"],
        unique=False,
        postgresql_where=sa.text("ingested_at IS NULL"),
    )
    op.create_table(
        "analytics_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_analytics_cursors")),
    )


def downgrade() -> None:
    op.drop_table("analytics_cursors")
    op.drop_index(
        "ix_analytics_inbox_pending",
        table_name="analytics_inbox",
        postgresql_where=sa.text("ingested_at IS NULL"),
    )
    op.drop_table("analytics_inbox")
