"""Every table's model, imported so that Alembic sees the whole schema."""

from pull.kit.db import Base
from pull.kit.outbox import OutboxEvent

__all__ = ["Base", "OutboxEvent"]
