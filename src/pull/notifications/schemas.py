"""Request and response shapes of the notifications API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pull.notifications.catalog import Channel, NotificationType


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: str
    title: str
    body: str
    data: dict[str, Any]
    read_at: dt.datetime | None
    created_at: dt.datetime


class NotificationPage(BaseModel):
    items: list[NotificationRead]
    cursor: str | None = Field(None, description="Pass as `cursor` to get the next page")
    unread_count: int


class MarkRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] | None = Field(
        None, max_length=200, description="Notifications to mark read; omit for all"
    )


class MarkedRead(BaseModel):
    marked: int
    unread_count: int


class ChannelPreference(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: NotificationType
    channel: Channel
    enabled: bool


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: dt.time = Field(description="Local time quiet hours start, e.g. 22:00")
    end: dt.time = Field(description="Local time they end, e.g. 07:00 (may be the next day)")

    @model_validator(mode="after")
    def _distinct(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours must not start and end at the same time")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("quiet hours are local wall-clock times: no UTC offset")
        return self


class PreferencesRead(BaseModel):
    time_zone: str
    quiet_hours: QuietHours | None
    preferences: list[ChannelPreference]


class PreferencesWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_zone: str | None = Field(None, max_length=64, description="IANA name, e.g. Europe/Paris")
    quiet_hours: QuietHours | None = None
    clear_quiet_hours: bool = False
    preferences: list[ChannelPreference] = Field(default_factory=list, max_length=100)


class DeviceWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: Literal["fcm", "apns"]
    token: str = Field(min_length=8, max_length=512, pattern=r"^[A-Za-z0-9_:\-.]+$")


class DeviceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    platform: str
    created_at: dt.datetime


class DeviceList(BaseModel):
    items: list[DeviceRead]


class AlertCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticker: str = Field(min_length=1, max_length=64)
    above: int | None = Field(None, ge=1, le=99, description="Fire at a trade at or above (¢)")
    below: int | None = Field(None, ge=1, le=99, description="Fire at a trade at or below (¢)")

    @model_validator(mode="after")
    def _one(self) -> AlertCreate:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above or below")
        return self


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    ticker: str
    direction: str
    price: int
    status: str
    triggered_at: dt.datetime | None
    triggered_price: int | None
    created_at: dt.datetime


class AlertPage(BaseModel):
    items: list[AlertRead]
    cursor: str | None = None


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    channel: str
    status: str
    attempts: int
    detail: str | None
    sent_at: dt.datetime | None
