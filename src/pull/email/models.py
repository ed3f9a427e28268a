"""Email tables: connected mailboxes (Nylas grants, ids encrypted), their messages (bodies
encrypted with the field cipher; a stripped tsvector and an LSA embedding as the search index)
and received webhook notifications (for deduplication)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from pull.email.textmodel import EMBEDDING_DIM
from pull.kit.db import Base, new_id, utcnow


class Vector(UserDefinedType[list[float]]):
    """pgvector's `vector(n)`; values are written as its text form by the repository."""

    cache_ok = True

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def get_col_spec(self, **kw: Any) -> str:
        return f"vector({self.dim})"


class EmailGrant(Base):
    """A user's connected mailbox. The Nylas grant id is a credential: stored encrypted, found
    by its SHA-256 (webhooks name the grant in clear)."""

    __tablename__ = "email_grants"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'revoked')", name="status"),
        UniqueConstraint("user_id"),
        UniqueConstraint("grant_hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    provider: Mapped[str] = mapped_column(String(32))
    grant_enc: Mapped[str] = mapped_column(Text)
    grant_hash: Mapped[str] = mapped_column(String(64))
    email_enc: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    sync_state: Mapped[str] = mapped_column(
        String(16), default="backfilling", server_default="backfilling"
    )
    backfilled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )


class EmailMessage(Base):
    __tablename__ = "email_messages"
    __table_args__ = (
        UniqueConstraint("grant_ref", "nylas_id"),
        Index("ix_email_messages_list", "user_id", "received_at", "id"),
        Index("ix_email_messages_category", "user_id", "category", "received_at", "id"),
        Index("ix_email_messages_thread", "user_id", "thread_id"),
        Index("ix_email_messages_search", "search", postgresql_using="gin"),
        Index(
            "ix_email_messages_embedding",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    grant_ref: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("email_grants.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    nylas_id: Mapped[str] = mapped_column(String(255))
    thread_id: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(Text, default="")
    from_name: Mapped[str] = mapped_column(Text, default="")
    from_email: Mapped[str] = mapped_column(String(320), default="")
    to_json: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    folders: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    unread: Mapped[bool] = mapped_column(Boolean, default=True)
    starred: Mapped[bool] = mapped_column(Boolean, default=False)
    # body and snippet: Fernet tokens (FIELD_ENCRYPTION_KEYS); never logged, never in clear
    body_enc: Mapped[str | None] = mapped_column(Text)
    snippet_enc: Mapped[str | None] = mapped_column(Text)
    body_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    reply_probability: Mapped[float] = mapped_column(Float, default=0.0)
    intent: Mapped[str] = mapped_column(String(32), default="none")
    search: Mapped[Any] = mapped_column(TSVECTOR)
    embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIM))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )


class EmailWebhookEvent(Base):
    """A received notification, by its envelope id: a redelivery is acknowledged, not applied."""

    __tablename__ = "email_webhook_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, index=True
    )
