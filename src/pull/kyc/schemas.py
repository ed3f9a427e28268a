"""Public shapes of the KYC module (tiers, limits, status), for other modules and the API."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, field_validator


class Tier(StrEnum):
    """The one tier vocabulary, lowest first."""

    none = "none"
    basic = "basic"
    standard = "standard"
    enhanced = "enhanced"
    accredited = "accredited"

    @property
    def rank(self) -> int:
        return TIER_ORDER.index(self)


TIER_ORDER: tuple[Tier, ...] = (
    Tier.none,
    Tier.basic,
    Tier.standard,
    Tier.enhanced,
    Tier.accredited,
)


# --- API shapes -------------------------------------------------------------------------------


TargetTier = Literal["basic", "standard", "enhanced", "accredited"]
StepStatus = Literal["pending", "running", "waiting", "passed", "failed", "review", "skipped"]
ApplicationStatus = Literal[
    "pending", "in_progress", "manual_review", "approved", "declined", "expired", "cancelled"
]


class AddressIn(BaseModel):
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    state: str = Field(min_length=2, max_length=50)
    postal_code: str = Field(min_length=3, max_length=20)
    country: str = Field("US", min_length=2, max_length=2)


class StartRequest(BaseModel):
    target_tier: TargetTier
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    dob: dt.date
    address: AddressIn
    phone: str = Field(pattern=r"^\+?[0-9 ()\-]{7,20}$")
    ssn_last4: str | None = Field(None, pattern=r"^[0-9]{4}$")

    @field_validator("first_name", "last_name")
    @classmethod
    def _strip(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("must not be blank")
        return v

    @field_validator("dob")
    @classmethod
    def _adult(cls, v: dt.date) -> dt.date:
        today = dt.date.today()
        age = today.year - v.year - ((today.month, today.day) < (v.month, v.day))
        if age < 18 or age > 130:
            raise ValueError("must be at least 18 years old")
        return v


class MaskedPii(BaseModel):
    """The owner's own data, masked: enough to recognise it, not to reuse it."""

    first_name: str
    last_name: str
    dob: str
    address: str
    phone: str
    ssn_last4: str | None


class StepRead(BaseModel):
    name: str
    status: StepStatus


class ApplicationRead(BaseModel):
    id: uuid.UUID
    target_tier: TargetTier
    status: ApplicationStatus
    steps: list[StepRead]
    progress: int = Field(description="Percent of steps finished")
    reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    decided_at: dt.datetime | None
    pii: MaskedPii


class KycStatusRead(BaseModel):
    current_tier: Tier
    tier_expires_at: dt.datetime | None
    target_tier: TargetTier | None
    status: ApplicationStatus | Literal["none"]
    steps: list[StepRead]
    progress: int
    next_action: str | None = Field(
        description="start | complete_identity_verification | wait | wait_for_review | retry"
    )
    inquiry_id: str | None = Field(None, description="Persona inquiry for the client SDK")
    session_token: str | None = Field(None, description="Persona session token (owner only)")
    application: ApplicationRead | None


class LimitRead(BaseModel):
    action: Literal["deposit", "withdrawal", "trade"]
    window: Literal["daily", "monthly"]
    limit_cents: int
    used_cents: int
    remaining_cents: int
    resets_at: dt.datetime | None


class LimitsRead(BaseModel):
    tier: Tier
    limits: list[LimitRead]
    single_trade_max_cents: int
    instant_credit_cents: int


class ReviewRead(BaseModel):
    application_id: uuid.UUID
    user_id: uuid.UUID
    target_tier: TargetTier
    status: ApplicationStatus
    steps: list[StepRead]
    reason: str | None
    created_at: dt.datetime
    pii: MaskedPii


class ApproveRequest(BaseModel):
    tier: TargetTier
    note: str = Field(min_length=1, max_length=2000)


class RejectRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class WebhookAck(BaseModel):
    received: bool = True
    duplicate: bool = False


class VerifiedPerson(BaseModel):
    """The identity data of an approved application, for opening accounts at partners (the
    broker). Plaintext PII: never log it or store it unencrypted."""

    def __repr__(self) -> str:
        return f"VerifiedPerson(application_id={self.application_id!r})"

    application_id: str
    tier: str
    email: str
    first_name: str
    last_name: str
    dob: str
    phone: str
    line1: str
    line2: str | None = None
    city: str
    state: str
    postal_code: str
    country: str = "US"
    ssn_last4: str | None = None
