"""Request and response shapes of the exchange (also its public data types).

Prices are integer cents (1-99), counts whole contracts, money integer cents. Field names follow
Kalshi's Trade API v2 where it has one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pull.kit.idempotency import KEY_PATTERN

MarketStatus = Literal["initialized", "open", "paused", "closed", "settled"]
MarketResult = Literal["yes", "no", "void"]
OrderStatus = Literal["pending", "resting", "executed", "canceled"]
Side = Literal["yes", "no"]
Action = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
TimeInForce = Literal["good_till_canceled", "immediate_or_cancel", "fill_or_kill"]
SelfTradePrevention = Literal["taker_at_cross", "maker"]

TICKER = r"^[A-Z0-9][A-Z0-9._\-]{0,63}$"
CLIENT_ORDER_ID = KEY_PATTERN  # an order's idempotency key: the same limits as every key
MAX_COUNT = 1_000_000
MAX_BATCH = 20


# --- market structure ---------------------------------------------------------------------------


class SeriesCreate(BaseModel):
    ticker: str = Field(pattern=TICKER, examples=["KXBTC"])
    title: str = Field(min_length=1, max_length=300)
    category: str = Field("", max_length=64)
    frequency: str = Field("", max_length=32)
    settlement_sources: list[dict[str, str]] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class SeriesRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ticker: str
    title: str
    category: str
    frequency: str
    settlement_sources: list[dict[str, str]]
    tags: list[str]


class EventCreate(BaseModel):
    ticker: str = Field(pattern=TICKER, examples=["KXBTC-26DEC31"])
    series_ticker: str = Field(pattern=TICKER)
    title: str = Field(min_length=1, max_length=300)
    subtitle: str = Field("", max_length=300)
    category: str = Field("", max_length=64)
    mutually_exclusive: bool = False


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    event_ticker: str
    series_ticker: str
    title: str
    subtitle: str
    category: str
    mutually_exclusive: bool


class MarketCreate(BaseModel):
    ticker: str = Field(pattern=TICKER, examples=["KXBTC-26DEC31-T100000"])
    event_ticker: str = Field(pattern=TICKER)
    title: str = Field(min_length=1, max_length=300)
    subtitle: str = Field("", max_length=300)
    yes_sub_title: str = Field("", max_length=300)
    no_sub_title: str = Field("", max_length=300)
    rules_primary: str = Field("", max_length=10_000)
    rules_secondary: str = Field("", max_length=10_000)
    category: str = Field("", max_length=64)
    settlement_source: str = Field("", max_length=300)
    open_time: dt.datetime
    close_time: dt.datetime
    expiration_time: dt.datetime | None = None
    taker_fee_bps: int = Field(700, ge=0, le=10_000, description="700 = 0.07 x C x P x (1-P)")
    maker_fee_bps: int = Field(0, ge=0, le=10_000)
    tick_size: Literal[1] = 1

    @model_validator(mode="after")
    def _times(self) -> MarketCreate:
        for name in ("open_time", "close_time", "expiration_time"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone")
        if self.close_time <= self.open_time:
            raise ValueError("close_time must be after open_time")
        if self.expiration_time is not None and self.expiration_time < self.close_time:
            raise ValueError("expiration_time must not be before close_time")
        return self


class MarketRead(BaseModel):
    ticker: str
    event_ticker: str
    title: str
    subtitle: str
    yes_sub_title: str
    no_sub_title: str
    rules_primary: str
    rules_secondary: str
    category: str
    settlement_source: str
    status: MarketStatus
    result: MarketResult | None
    open_time: dt.datetime
    close_time: dt.datetime
    expiration_time: dt.datetime | None
    settled_at: dt.datetime | None
    tick_size: int
    taker_fee_bps: int
    maker_fee_bps: int
    yes_bid: int | None = Field(description="Best YES bid, cents")
    yes_ask: int | None = Field(description="Best YES ask (100 - best NO bid), cents")
    no_bid: int | None
    no_ask: int | None
    last_price: int | None
    volume: int
    volume_24h: int
    open_interest: int
    liquidity: int = Field(description="Cents resting in the book (price x count, both sides)")
    created_time: dt.datetime | None = None
    updated_time: dt.datetime | None = None


class ResolveRequest(BaseModel):
    result: MarketResult


# --- orders -------------------------------------------------------------------------------------


class OrderCreate(BaseModel):
    ticker: str = Field(pattern=TICKER)
    side: Side
    action: Action
    count: int = Field(ge=1, le=MAX_COUNT)
    type: OrderType = "limit"
    yes_price: int | None = Field(None, description="Limit in cents (1-99); or no_price")
    no_price: int | None = None
    time_in_force: TimeInForce = "good_till_canceled"
    expiration_ts: int | None = Field(None, description="Unix seconds; the order expires then")
    client_order_id: str | None = Field(None, pattern=CLIENT_ORDER_ID)
    post_only: bool = False
    reduce_only: bool = False
    buy_max_cost: int | None = Field(None, ge=1, description="Cents; implies fill-or-kill")
    self_trade_prevention_type: SelfTradePrevention = "taker_at_cross"


class OrderAmend(BaseModel):
    yes_price: int | None = None
    no_price: int | None = None
    count: int = Field(ge=1, le=MAX_COUNT, description="New total size, filled part included")


class OrderDecrease(BaseModel):
    reduce_by: int | None = Field(None, ge=1)
    reduce_to: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one(self) -> OrderDecrease:
        if (self.reduce_by is None) == (self.reduce_to is None):
            raise ValueError("give exactly one of reduce_by and reduce_to")
        return self


class OrderRead(BaseModel):
    order_id: uuid.UUID
    user_id: uuid.UUID
    client_order_id: str | None
    ticker: str
    side: Side
    action: Action
    type: OrderType
    status: OrderStatus
    yes_price: int
    no_price: int
    time_in_force: TimeInForce
    expiration_time: dt.datetime | None
    initial_count: int
    fill_count: int
    remaining_count: int
    taker_fees: int
    maker_fees: int
    taker_fill_cost: int
    maker_fill_cost: int
    post_only: bool
    reduce_only: bool
    buy_max_cost: int | None
    self_trade_prevention_type: SelfTradePrevention
    queue_position: int | None = None
    cancel_reason: str | None
    created_time: dt.datetime
    last_update_time: dt.datetime


class BatchCreate(BaseModel):
    orders: list[OrderCreate] = Field(min_length=1, max_length=MAX_BATCH)


class BatchCancel(BaseModel):
    ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_BATCH)


class BatchError(BaseModel):
    code: str
    message: str
    details: object | None = None


class BatchItem(BaseModel):
    order: OrderRead | None = None
    error: BatchError | None = None
    client_order_id: str | None = None
    order_id: uuid.UUID | None = None


class BatchResult(BaseModel):
    orders: list[BatchItem]


# --- portfolio ----------------------------------------------------------------------------------


class FillRead(BaseModel):
    fill_id: int
    trade_id: int
    order_id: uuid.UUID
    ticker: str
    side: Side
    action: Action
    count: int
    yes_price: int
    no_price: int
    is_taker: bool
    fee: int
    created_time: dt.datetime


class PositionRead(BaseModel):
    ticker: str
    position: int = Field(description="Signed: YES contracts > 0, NO contracts < 0")
    average_cost: int | None = Field(description="Cents per held contract (rounded down)")
    cost_basis: int
    market_exposure: int = Field(description="Cents paid for the contracts held")
    realized_pnl: int
    fees_paid: int
    total_traded: int
    resting_orders_count: int
    resting_order_value: int = Field(description="Cents held for resting buys")
    last_updated_ts: dt.datetime


class SettlementRead(BaseModel):
    ticker: str
    market_result: MarketResult
    yes_count: int
    no_count: int
    cost_basis: int
    revenue: int
    settled_time: dt.datetime


# --- market data --------------------------------------------------------------------------------


class OrderbookRead(BaseModel):
    ticker: str
    yes: list[tuple[int, int]] = Field(description="YES bids [price, count], best first")
    no: list[tuple[int, int]] = Field(description="NO bids [price, count], best first")


class TradeRead(BaseModel):
    trade_id: int
    ticker: str
    count: int
    yes_price: int
    no_price: int
    taker_side: Side
    created_time: dt.datetime


class OHLC(BaseModel):
    open: int | None
    high: int | None
    low: int | None
    close: int | None


class Candlestick(BaseModel):
    end_period_ts: int
    price: OHLC
    yes_bid: OHLC
    yes_ask: OHLC
    volume: int
    open_interest: int


class CandlesticksRead(BaseModel):
    ticker: str
    period_interval: int
    candlesticks: list[Candlestick]


# --- settlement ---------------------------------------------------------------------------------


class SettleBatch(BaseModel):
    settled: int
    paid: int
    done: bool
    last_user_id: uuid.UUID | None = None
