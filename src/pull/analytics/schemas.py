"""Request and response shapes of the analytics API (Segment / PostHog spec for input)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

_Id = Annotated[str, Field(min_length=1, max_length=200)]


class _Message(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    user_id: _Id | None = Field(None, validation_alias=AliasChoices("user_id", "userId"))
    anonymous_id: _Id | None = Field(
        None, validation_alias=AliasChoices("anonymous_id", "anonymousId", "distinct_id")
    )
    timestamp: dt.datetime | None = None
    message_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        validation_alias=AliasChoices("message_id", "messageId", "uuid"),
        description="Unique per message; a resent message with the same id is counted once",
    )


class TrackMessage(_Message):
    """`track`: something a user did (`event`, `properties`)."""

    type: Literal["track"] = "track"
    event: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)


class IdentifyMessage(_Message):
    """`identify`: ties `anonymous_id` to the signed-in user; `traits` (PII is dropped)."""

    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(default_factory=dict)


Message = Annotated[TrackMessage | IdentifyMessage, Field(discriminator="type")]


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    batch: list[Message] = Field(min_length=1)


class TrackResponse(BaseModel):
    success: bool = True
    accepted: int = Field(description="new messages stored for ingest")
    duplicates: int = Field(description="messages whose message_id was already received")


# --- dashboards -----------------------------------------------------------------------------


class OverviewDay(BaseModel):
    day: dt.date
    dau: int
    wau: int
    mau: int
    signups: int
    email_verifications: int
    phone_verifications: int
    kyc_approvals: int
    deposits: int
    deposit_volume_cents: int
    withdrawals: int
    withdrawal_volume_cents: int
    trades: int
    contracts_traded: int
    trading_volume_cents: int
    trading_fees_cents: int
    withdrawal_fees_cents: int


class OverviewTotals(BaseModel):
    active_users: int
    signups: int
    email_verifications: int
    phone_verifications: int
    kyc_approvals: int
    deposits: int
    deposit_volume_cents: int
    withdrawals: int
    withdrawal_volume_cents: int
    trades: int
    contracts_traded: int
    trading_volume_cents: int
    trading_fees_cents: int
    withdrawal_fees_cents: int


class OverviewResponse(BaseModel):
    start: dt.date
    end: dt.date
    days: list[OverviewDay]
    totals: OverviewTotals


class FunnelStep(BaseModel):
    step: str
    users: int
    conversion_from_previous: float = Field(description="users / users of the previous step")
    conversion_from_start: float
    drop_off: int = Field(description="users of the previous step who did not reach this one")


class FunnelResponse(BaseModel):
    start: dt.date
    end: dt.date
    window_seconds: int
    steps: list[FunnelStep]


class RetentionCohort(BaseModel):
    cohort: dt.date = Field(description="Monday of the sign-up week")
    users: int
    retained: list[int] = Field(description="users active in week 0, 1, ... after sign-up")
    rates: list[float]


class RetentionResponse(BaseModel):
    start: dt.date
    end: dt.date
    weeks: int
    cohorts: list[RetentionCohort]


class RevenueDay(BaseModel):
    day: dt.date
    by_product: dict[str, int]
    total_cents: int


class RevenueResponse(BaseModel):
    start: dt.date
    end: dt.date
    days: list[RevenueDay]
    totals_by_product: dict[str, int]
    total_cents: int


class MarketRow(BaseModel):
    ticker: str
    contracts: int
    volume_cents: int
    trades: int
    traders: int
    fees_cents: int


class MarketsResponse(BaseModel):
    start: dt.date
    end: dt.date
    markets: list[MarketRow]
