"""Request and response shapes of the email API."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, Field

from pull.email.textmodel import CATEGORIES


class ConnectRequest(BaseModel):
    login_hint: str | None = Field(
        None, max_length=320, description="The address to prefill on the provider's sign-in"
    )


class ConnectRead(BaseModel):
    auth_url: str = Field(description="Send the user here (Nylas hosted authentication)")
    expires_in: int = Field(description="Seconds the link's state stays valid")


class MailboxRead(BaseModel):
    email: str
    provider: str
    status: str = Field(description="active | revoked")
    sync_state: str = Field(description="backfilling | live | stopped")
    messages: int
    connected_at: dt.datetime


class MessageRead(BaseModel):
    id: uuid.UUID
    thread_id: str
    subject: str
    from_name: str
    from_email: str
    received_at: dt.datetime
    unread: bool
    starred: bool
    archived: bool
    category: str = Field(description=", ".join(CATEGORIES))
    priority: str = Field(description="high | normal | low")
    snippet: str
    created_at: dt.datetime


class MessageDetail(MessageRead):
    body: str | None = Field(description="Plain text; null while a large body is being fetched")
    folders: list[str]


class ThreadRead(BaseModel):
    thread_id: str
    messages: list[MessageDetail]


class MessageUpdate(BaseModel):
    unread: bool | None = None
    archived: bool | None = None


class SearchHit(BaseModel):
    message: MessageRead
    score: float = Field(description="Reciprocal-rank-fusion score")
    semantic_rank: int | None
    keyword_rank: int | None


class SearchRead(BaseModel):
    items: list[SearchHit]
    cursor: str | None = None


class Suggestions(BaseModel):
    suggest: bool = Field(description="Whether a short reply is worth offering at all")
    reply_probability: float
    intent: str
    replies: list[str] = Field(description="Up to three, from the curated response set")


class ReplyRequest(BaseModel):
    body: str = Field(min_length=1, max_length=20_000)


class DraftRead(BaseModel):
    draft: str
    provider: str


class DisconnectRead(BaseModel):
    disconnected: bool
    messages_deleted: int


class WebhookAck(BaseModel):
    received: bool
    duplicate: bool
