"""Request and response shapes of the funding module."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_AMOUNT = 100_000_000_00  # $100M in cents: far above any limit, below any overflow


class LinkTokenRead(BaseModel):
    link_token: str
    expiration: str


class SandboxPublicTokenCreate(BaseModel):
    username: str = Field("user_good", max_length=100)
    password: str = Field("pass_good", max_length=100)
    institution_id: str = Field("ins_109508", max_length=50)


class LinkAccount(BaseModel):
    account_id: str = Field(description="Pass to POST /api/v1/funding/bank-accounts")
    name: str
    mask: str | None
    subtype: str | None


class LinkInstitution(BaseModel):
    institution_id: str
    name: str | None


class SandboxPublicTokenRead(BaseModel):
    """As Plaid Link's `onSuccess(public_token, metadata)` reports a finished session."""

    public_token: str
    accounts: list[LinkAccount]
    institution: LinkInstitution


class BankAccountCreate(BaseModel):
    public_token: str = Field(min_length=1, max_length=200)
    account_id: str = Field(min_length=1, max_length=100)


class BankAccountRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    institution_name: str | None
    name: str
    mask: str | None
    subtype: str | None
    status: str
    created_at: dt.datetime


class BankAccountList(BaseModel):
    items: list[BankAccountRead]


class DepositCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(gt=0, le=MAX_AMOUNT, description="Cents")
    bank_account_id: uuid.UUID


class WithdrawalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(gt=0, le=MAX_AMOUNT, description="Gross cents, fee included")
    bank_account_id: uuid.UUID
    speed: Literal["standard", "instant"] = "standard"


class RejectRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class StatusChange(BaseModel):
    status: str
    detail: str | None
    at: dt.datetime


class DepositRead(BaseModel):
    id: uuid.UUID
    amount: int
    instant_amount: int = Field(description="Credited before settlement (not withdrawable yet)")
    status: str = Field(description="created, pending, posted, settled, failed or returned")
    bank_account_id: uuid.UUID
    failure_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    history: list[StatusChange]


class WithdrawalRead(BaseModel):
    id: uuid.UUID
    amount: int = Field(description="Gross, held from the balance")
    fee: int
    net_amount: int = Field(description="What reaches the bank account")
    speed: str
    status: str = Field(
        description="pending_approval, approved, processing, posted, completed, rejected, "
        "failed or returned"
    )
    bank_account_id: uuid.UUID
    failure_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    history: list[StatusChange]


class DepositPage(BaseModel):
    items: list[DepositRead]
    cursor: str | None = None


class WithdrawalPage(BaseModel):
    items: list[WithdrawalRead]
    cursor: str | None = None


class WebhookAck(BaseModel):
    received: int = Field(description="New transfer events taken in")


class RestrictRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class RestrictionRead(BaseModel):
    user_id: uuid.UUID
    status: str
    reason: str
    owed: int = Field(description="Cents the user owes the house (negative balance), if any")
