"""identity: recent authentication on sessions, why an API key was revoked

Revision ID: 0013_api_keys
Revises: 0012_rwa_trading
Create Date: 2026-12-01 20:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_api_keys"
down_revision: str | None = "0012_rwa_trading"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # When the session last proved the password or a 2FA code (login, or reauthenticate).
    op.add_column(
        "auth_sessions", sa.Column("authenticated_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("api_keys", sa.Column("revoked_reason", sa.String(length=40), nullable=True))


def downgrade() -> None:
    op.drop_column("api_keys", "revoked_reason")
    op.drop_column("auth_sessions", "authenticated_at")
