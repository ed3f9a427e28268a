"""Request and response shapes of the rewards API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ItemKind = Literal["cash_credit", "gift_card", "sweepstakes", "physical"]
Period = Literal["weekly", "monthly", "all_time"]
FormulaField = Literal["count", "amount", "contracts", "fees", "revenue"]


class Expiring(BaseModel):
    points: int
    expires_at: dt.datetime


class BalanceRead(BaseModel):
    available: int = Field(description="Points that can be redeemed now")
    pending: int = Field(description="Points held by redemptions being fulfilled")
    lifetime_earned: int = Field(description="Points ever earned, less reversed earnings")
    lifetime_redeemed: int = Field(description="Points spent on fulfilled redemptions")
    tier: str
    tier_multiplier_bp: int = Field(description="Earning multiplier of the tier, basis points")
    qualifying_points: int = Field(description="Qualifying points of the last 365 days")
    next_tier: str | None
    points_to_next_tier: int | None
    expiring: list[Expiring] = Field(description="Lots expiring within the warning window")


class HistoryItem(BaseModel):
    id: int = Field(description="Ledger entry id")
    transfer_id: int
    kind: str = Field(description="rewards_earn_qualifying, rewards_redemption, ...")
    points: int = Field(description="Signed: positive credits the balance")
    balance_after: int
    status: str = Field(description="posted, pending (a hold) or voided")
    reference: str | None
    created_at: dt.datetime


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    cursor: str | None = None


class Formula(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["fixed", "per_unit"]
    points: int = Field(ge=0, le=1_000_000_000)
    field: FormulaField | None = Field(
        None, description="per_unit: the event's measure (amount in cents, contracts, ...)"
    )
    per: int | None = Field(None, ge=1, le=10**12, description="per_unit: units per award")
    min: int | None = Field(None, ge=0, le=10**15, description="smallest measure that earns")


class RuleWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_type: str = Field(min_length=1, max_length=100, examples=["funding.deposit_settled"])
    formula: Formula
    qualifying: bool = True
    daily_cap: int | None = Field(None, ge=0, le=10**12)
    lifetime_cap: int | None = Field(None, ge=0, le=10**12)
    expiry_days: int | None = Field(None, ge=1, le=3650)
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    active: bool = True


class RuleCreate(RuleWrite):
    key: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")


class RuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    key: str
    version: int
    event_type: str
    formula: dict[str, Any]
    qualifying: bool
    daily_cap: int | None
    lifetime_cap: int | None
    expiry_days: int | None
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    active: bool
    superseded_at: dt.datetime | None
    created_by: uuid.UUID | None
    created_at: dt.datetime


class RuleList(BaseModel):
    items: list[RuleRead]


class ItemWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    kind: ItemKind
    points_price: int = Field(ge=1, le=10**12)
    stock: int | None = Field(None, ge=0, le=10**9, description="null: unlimited")
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    active: bool = True
    provider_product_id: str | None = Field(None, max_length=100)
    face_value_cents: int | None = Field(None, ge=1, le=10**9)


class ItemUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    points_price: int | None = Field(None, ge=1, le=10**12)
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    active: bool | None = None


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    kind: str
    points_price: int
    stock: int | None
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    active: bool
    provider_product_id: str | None
    face_value_cents: int | None


class ItemList(BaseModel):
    items: list[ItemRead]


class StockChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delta: int = Field(ge=-(10**9), le=10**9, description="Added to the stock (negative removes)")


class ShippingAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    state: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")


class RedeemRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reward_id: uuid.UUID
    quantity: int = Field(1, ge=1, le=100)
    shipping_address: ShippingAddress | None = None


class RedemptionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    reward_id: uuid.UUID
    kind: str
    quantity: int
    points: int
    cash_cents: int | None
    status: str = Field(description="pending, fulfilled, failed or refunded")
    shipping_address: dict[str, Any] | None
    provider_ref: str | None
    delivery: dict[str, Any] | None
    failure_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class RedemptionPage(BaseModel):
    items: list[RedemptionRead]
    cursor: str | None = None


class LeaderboardEntry(BaseModel):
    rank: int
    display_name: str = Field(
        description="The user's display name if they opted in (PUT /settings "
        "leaderboard_public), else a stable alias such as 'Player 3F7K2Q'"
    )
    points: int
    is_me: bool = Field(False, description="This entry is the caller's")
    user_id: uuid.UUID | None = Field(
        None, description="Only on the caller's own entries: other users' ids are never shown"
    )


class LeaderboardRead(BaseModel):
    period: Period
    period_key: str
    items: list[LeaderboardEntry]
    me: LeaderboardEntry | None = None


class StreakRead(BaseModel):
    streak: int
    best: int
    freezes: int
    freezes_used: int
    local_date: dt.date
    timezone: str
    points: int


class SettingsWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(None, min_length=1, max_length=64, examples=["America/New_York"])
    leaderboard_public: bool | None = Field(
        None, description="Show my display name on the leaderboards (default: an alias)"
    )


class SettingsRead(BaseModel):
    timezone: str
    leaderboard_public: bool
    streak: int
    freezes: int
    streak_last_day: dt.date | None


class RefereeRead(BaseModel):
    user_id: uuid.UUID
    status: str = Field(description="signed_up, kyc_passed, deposited, rewarded or refused")
    refusal_reason: str | None = None
    joined_at: dt.datetime
    rewarded_at: dt.datetime | None = None


class ReferralsRead(BaseModel):
    code: str
    referrer_points: int
    referee_points: int
    min_deposit_cents: int
    yearly_cap: int
    rewarded_this_year: int
    referees: list[RefereeRead]


class AdjustmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID
    points: int = Field(ge=-(10**12), le=10**12, description="Signed; not zero")
    reason: str = Field(min_length=3, max_length=1000)
    qualifying: bool = False


class AdjustmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    points: int
    qualifying: bool
    reason: str
    status: str = Field(description="pending_approval, applied or rejected")
    requested_by: uuid.UUID
    decided_by: uuid.UUID | None
    applied_points: int | None
    created_at: dt.datetime
    decided_at: dt.datetime | None


class AdjustmentList(BaseModel):
    items: list[AdjustmentRead]


class ReversalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_ref: str = Field(min_length=1, max_length=200, examples=["order:3f2c..."])


class ReversalRead(BaseModel):
    lot_id: int
    taken: int
    unrecovered: int


class ReversalList(BaseModel):
    items: list[ReversalRead]


class MaintenanceRead(BaseModel):
    expired_lots: int
    warned_lots: int
    reviewed_profiles: int
