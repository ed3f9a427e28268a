"""Request and response shapes of the messaging API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RoomRead(BaseModel):
    id: uuid.UUID
    matrix_room_id: str
    kind: Literal["market", "asset", "dm", "alerts"]
    subject: str
    name: str
    joined_at: dt.datetime


class RoomPage(BaseModel):
    items: list[RoomRead]
    cursor: str | None = None


class SendMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=4000)
    txn_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="Your idempotency key: the same txn_id sends the message once",
    )


class Sent(BaseModel):
    event_id: str


class MessageRead(BaseModel):
    event_id: str
    sender: str = Field(description="Matrix user id")
    user_id: uuid.UUID | None = Field(None, description="The PULL customer, when one sent it")
    type: str
    msgtype: str | None
    body: str | None
    redacted: bool
    ts: int = Field(description="Server timestamp, ms since the epoch")


class MessagePage(BaseModel):
    items: list[MessageRead] = Field(description="Newest first")
    next: str | None = Field(None, description="Pass as `from` for older messages")
    backfilled: bool = Field(description="True when sync was limited and /messages filled in")


class DirectMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID


class MatrixToken(BaseModel):
    homeserver: str
    user_id: str
    access_token: str


class ReportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000)


class ReportRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    room_id: uuid.UUID
    event_id: str
    sender: str
    reporter_id: uuid.UUID
    reason: str
    status: str
    created_at: dt.datetime


class ReportPage(BaseModel):
    items: list[ReportRead]
    cursor: str | None = None


class Redact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=2, max_length=255, pattern=r"^\$[A-Za-z0-9_\-+/=:.]+$")
    reason: str = Field(min_length=1, max_length=500)


class Mute(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID
    minutes: int | None = Field(None, ge=1, le=525_600, description="Omit for indefinitely")
    reason: str = Field(min_length=1, max_length=500)
