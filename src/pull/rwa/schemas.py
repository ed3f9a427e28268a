"""Request and response shapes of the RWA API (integers in cents and whole shares)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from pull.kyc.schemas import Tier

Category = Literal["card", "comic", "watch", "sneaker", "memorabilia", "coin", "other"]
AssetState = Literal[
    "draft",
    "offering",
    "funded",
    "canceled",
    "locked",
    "trading",
    "buyout_vote",
    "sold",
    "distributed",
]
OfferingStatus = Literal["draft", "open", "funded", "failed", "canceled"]
MAX_CENTS = 10**13  # $100bn: anything above is a typo, refused as 422
MAX_SHARES = 10**9
GRADE = r"^(10|[1-9](\.5)?)$"


class AssetCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    category: Category
    description: str = Field("", max_length=5000)
    grader: Literal["PSA"] = "PSA"
    cert_number: str = Field(pattern=r"^[0-9]{5,15}$", description="The grader's certificate")
    grade: str = Field(pattern=GRADE, description="The grade claimed, checked with the grader")
    images: list[str] = Field(default_factory=list, max_length=20)
    custodian: str = Field(min_length=1, max_length=100, description="Who holds the item")
    vault_location: str = Field("", max_length=200)
    insured_value_cents: int = Field(ge=0, le=MAX_CENTS)
    consignor_id: uuid.UUID = Field(description="The user who consigned the item; paid at close")

    @model_validator(mode="after")
    def _images(self) -> AssetCreate:
        for url in self.images:
            if len(url) > 500 or not url.startswith(("https://", "http://")):
                raise ValueError("images are http(s) URLs of at most 500 characters")
        return self


class CertificateRead(BaseModel):
    grader: str
    cert_number: str
    grade: str
    subject: str
    year: str
    brand: str
    category: str
    population: int | None
    population_higher: int | None
    verified_at: dt.datetime


class ValuationCreate(BaseModel):
    kind: Literal["appraisal", "comparable_sale"]
    value_cents: int = Field(gt=0, le=MAX_CENTS)
    source: str = Field(min_length=1, max_length=200, description="Appraiser or sale venue")
    note: str = Field("", max_length=2000)
    as_of: AwareDatetime | None = None


class ValuationRead(BaseModel):
    id: int
    kind: str
    value_cents: int
    source: str
    note: str
    as_of: dt.datetime


class OfferingCreate(BaseModel):
    total_shares: int = Field(gt=0, le=MAX_SHARES)
    price_cents: int = Field(gt=0, le=10**9, description="Price of one share in cents")
    opens_at: AwareDatetime
    closes_at: AwareDatetime
    min_raise_cents: int = Field(gt=0, le=MAX_CENTS, description="All or nothing below this")
    max_per_investor_bps: int = Field(
        1999, ge=1, le=10_000, description="Per-investor cap in basis points of the shares"
    )
    kyc_tier: Tier = Field(Tier.basic, description="The KYC tier an investor needs")
    sourcing_fee_bps: int = Field(
        500, ge=0, le=5000, description="Taken from the raise at close, to revenue"
    )

    @model_validator(mode="after")
    def _terms(self) -> OfferingCreate:
        if self.closes_at <= self.opens_at:
            raise ValueError("closes_at must be after opens_at")
        if self.min_raise_cents > self.total_shares * self.price_cents:
            raise ValueError("min_raise_cents is more than the whole offering raises")
        return self


class OfferingRead(BaseModel):
    id: uuid.UUID
    asset_id: uuid.UUID
    status: OfferingStatus
    total_shares: int
    price_cents: int
    opens_at: dt.datetime
    closes_at: dt.datetime
    min_raise_cents: int
    max_per_investor_bps: int
    max_shares_per_investor: int
    kyc_tier: str
    sourcing_fee_bps: int
    shares_subscribed: int
    shares_remaining: int
    raised_cents: int
    investors: int
    close_reason: str | None
    closed_at: dt.datetime | None
    settled_at: dt.datetime | None
    created_at: dt.datetime


class AssetRead(BaseModel):
    id: uuid.UUID
    symbol: str = Field(description="The asset's share currency on the ledger (RWA<n>)")
    title: str
    category: str
    description: str
    grade: str
    certificate: CertificateRead
    images: list[str]
    custodian: str
    vault_location: str
    insured_value_cents: int
    state: AssetState
    locked_until: dt.datetime | None
    valuation_cents: int | None = Field(description="The latest appraisal or comparable sale")
    last_price_cents: int | None = Field(description="Last trade, else the offering price")
    shares_outstanding: int
    created_at: dt.datetime


class AssetDetail(AssetRead):
    valuations: list[ValuationRead]
    offerings: list[OfferingRead]


class AssetPage(BaseModel):
    items: list[AssetRead]
    cursor: str | None = None


class SubscribeRequest(BaseModel):
    shares: int = Field(gt=0, le=MAX_SHARES)


class SubscriptionRead(BaseModel):
    id: uuid.UUID
    offering_id: uuid.UUID
    asset_id: uuid.UUID
    shares: int
    amount_cents: int
    status: Literal["held", "issued", "voided"]
    created_at: dt.datetime


class SubscriptionPage(BaseModel):
    items: list[SubscriptionRead]
    cursor: str | None = None


class Listing(BaseModel):
    kind: Literal["offering", "trading"]
    asset: AssetRead
    offering: OfferingRead | None = None


class ListingPage(BaseModel):
    items: list[Listing]


class Holding(BaseModel):
    asset_id: uuid.UUID
    symbol: str
    title: str
    state: str
    shares: int = Field(description="Shares owned (including those reserved by open sells)")
    shares_reserved: int = Field(description="Reserved by open sell orders")
    cost_basis_cents: int
    price_cents: int | None
    value_cents: int | None


class Ownership(BaseModel):
    items: list[Holding]
    value_cents: int
    cost_basis_cents: int


class PurchaseRequest(BaseModel):
    asset_id: uuid.UUID
    shares: int = Field(gt=0, le=MAX_SHARES)
    max_price_cents: int | None = Field(
        None,
        gt=0,
        le=10**9,
        description="For an asset trading: the most to pay per share (an immediate-or-cancel "
        "buy); not used for an open offering",
    )


class PurchaseRead(BaseModel):
    kind: Literal["subscription", "order"]
    subscription: SubscriptionRead | None = None
    order: OrderRead | None = None


class OrderCreate(BaseModel):
    asset_id: uuid.UUID
    side: Literal["buy", "sell"]
    price_cents: int = Field(gt=0, le=10**9, description="Limit price of one share in cents")
    quantity: int = Field(gt=0, le=MAX_SHARES, description="Whole shares")
    time_in_force: Literal["gtc", "ioc"] = Field(
        "gtc", description="gtc rests until filled or canceled; ioc cancels what does not fill"
    )


class OrderRead(BaseModel):
    id: uuid.UUID
    asset_id: uuid.UUID
    side: Literal["buy", "sell"]
    price_cents: int
    quantity: int
    remaining: int
    filled: int
    filled_cents: int = Field(description="What the fills cost or paid, in cents")
    time_in_force: str
    status: Literal["resting", "executed", "canceled"]
    cancel_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class OrderPage(BaseModel):
    items: list[OrderRead]
    cursor: str | None = None


class BookLevel(BaseModel):
    price_cents: int
    shares: int
    orders: int


class OrderbookRead(BaseModel):
    asset_id: uuid.UUID
    bids: list[BookLevel]
    asks: list[BookLevel]


class TradeRead(BaseModel):
    id: int
    price_cents: int
    quantity: int
    taker_side: str
    created_at: dt.datetime


class TradePage(BaseModel):
    items: list[TradeRead]
    cursor: str | None = None


class Candle(BaseModel):
    start: dt.datetime
    open: int
    high: int
    low: int
    close: int
    volume: int


class CandlesRead(BaseModel):
    asset_id: uuid.UUID
    interval: str
    items: list[Candle]


class BuyoutCreate(BaseModel):
    buyer: str = Field(min_length=1, max_length=200, description="Who offers to buy the asset")
    price_cents: int = Field(gt=0, le=MAX_CENTS, description="For the whole asset")


class BuyoutRead(BaseModel):
    id: uuid.UUID
    asset_id: uuid.UUID
    buyer: str
    price_cents: int
    price_per_share_cents: int = Field(description="Rounded down; holders get their pro rata cut")
    shares_outstanding: int
    pass_bps: int
    shares_needed: int = Field(description="Yes votes (in shares) that pass the offer")
    yes_shares: int
    no_shares: int
    closes_at: dt.datetime
    status: Literal["voting", "passed", "failed", "settled", "canceled"]
    decided_at: dt.datetime | None
    settled_at: dt.datetime | None
    distributed_at: dt.datetime | None
    my_vote: bool | None = None
    my_shares: int | None = None


class VoteRequest(BaseModel):
    approve: bool


PurchaseRead.model_rebuild()
