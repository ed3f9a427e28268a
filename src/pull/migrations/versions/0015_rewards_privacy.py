"""rewards: leaderboard privacy (a user shows their display name only when they opt in)

Revision ID: 0015_rewards_privacy
Revises: 0014_analytics
Create Date: 2026-12-01 23:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_rewards_privacy"
down_revision: str | None = "0014_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "rewards_profiles",
        sa.Column(
            "leaderboard_public", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_column("rewards_profiles", "leaderboard_public")
