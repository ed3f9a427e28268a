"""PostgreSQL tables of the analytics module: the inbox of client events and the cursor of
the outbox reader (ClickHouse's own schema is in chschema.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from pull.kit.db import Base, utcnow


class InboxMessage(Base):
    """A client event (track / identify), already free of PII, waiting for ClickHouse.

    Kept ANALYTICS_INBOX_RETENTION_DAYS after ingest so a resent message_id is recognised.
    """

    __tablename__ = "analytics_inbox"
    __table_args__ = (
        Index(
            "ix_analytics_inbox_pending",
            "id",
            postgresql_where=text("ingested_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    ingested_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class IngestCursor(Base):
    """How far a reader has consumed an append-only table (the outbox): every id at or
    below `position` is in ClickHouse."""

    __tablename__ = "analytics_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )
