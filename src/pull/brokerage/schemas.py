"""Request and response shapes of the trading API (quantities and prices as decimal strings,
cash in integer cents)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from pull.kit.idempotency import KEY_PATTERN

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop", "stop_limit"]
TimeInForce = Literal["day", "gtc", "ioc", "fok"]
MAX_QTY = Decimal("1000000000")
MAX_PRICE = Decimal("100000000")


class AccountRead(BaseModel):
    status: str
    account_number: str
    opened_at: dt.datetime


class OrderCreate(BaseModel):
    symbol: str = Field(min_length=1, max_length=32, examples=["AAPL", "BTC/USD"])
    side: Side
    type: OrderType = "market"
    time_in_force: TimeInForce = "day"
    qty: Decimal | None = Field(
        None, gt=0, le=MAX_QTY, description="Shares (fractional, at most 9 decimals)"
    )
    notional: int | None = Field(
        None, gt=0, le=10_000_000_000, description="Amount in cents (instead of qty)"
    )
    limit_price: Decimal | None = Field(None, gt=0, le=MAX_PRICE)
    stop_price: Decimal | None = Field(None, gt=0, le=MAX_PRICE)
    client_order_id: str | None = Field(
        None,
        pattern=KEY_PATTERN,
        description="Idempotency key of this order (else the Idempotency-Key header)",
    )


class OrderReplace(BaseModel):
    qty: Decimal | None = Field(None, gt=0, le=MAX_QTY)
    limit_price: Decimal | None = Field(None, gt=0, le=MAX_PRICE)
    stop_price: Decimal | None = Field(None, gt=0, le=MAX_PRICE)
    time_in_force: TimeInForce | None = None
    client_order_id: str | None = Field(None, pattern=KEY_PATTERN)


class OrderRead(BaseModel):
    id: uuid.UUID
    client_order_id: str
    symbol: str
    asset_class: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: int | None = Field(description="cents")
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    filled_cents: int
    hold_cents: int = Field(description="cash still held for this order")
    replaces: uuid.UUID | None
    replaced_by: uuid.UUID | None
    reject_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class OrderPage(BaseModel):
    items: list[OrderRead]
    cursor: str | None = None


class FillRead(BaseModel):
    execution_id: str
    qty: Decimal = Field(description="shares this execution added to the order's fill")
    price: Decimal
    amount_cents: int
    source: str
    at: dt.datetime


class FillList(BaseModel):
    items: list[FillRead]


class TradeRead(FillRead):
    order_id: uuid.UUID
    symbol: str
    side: str


class TradePage(BaseModel):
    items: list[TradeRead]
    cursor: str | None = None


class PositionRead(BaseModel):
    symbol: str
    asset_class: str
    qty: Decimal
    cost_cents: int
    avg_cost: Decimal
    current_price: Decimal | None
    market_value_cents: int | None
    unrealized_pl_cents: int | None
    realized_pl_cents: int


class PositionList(BaseModel):
    items: list[PositionRead]


class BuyingPower(BaseModel):
    available: int = Field(description="cents spendable on orders now (the ledger's available)")
    held: int = Field(description="cents reserved by open holds (orders, withdrawals)")
    held_for_orders: int = Field(description="the part of held that open orders hold")
    pending: int = Field(description="deposits not yet settled")
    total: int = Field(description="available + held + pending")


class AssetRead(BaseModel):
    symbol: str
    name: str
    asset_class: str
    exchange: str
    tradable: bool
    fractionable: bool


class AssetList(BaseModel):
    items: list[AssetRead]


class QuoteRead(BaseModel):
    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    at: dt.datetime
    market_open: bool


class SandboxQuoteSet(BaseModel):
    bid: Decimal = Field(gt=0, le=MAX_PRICE)
    ask: Decimal = Field(gt=0, le=MAX_PRICE)
    bid_size: Decimal = Field(Decimal(1_000_000), ge=0, le=MAX_QTY)
    ask_size: Decimal = Field(Decimal(1_000_000), ge=0, le=MAX_QTY)
    previous_close: Decimal | None = Field(
        None, gt=0, le=MAX_PRICE, description="The close the snapshots report as the previous day's"
    )


class SandboxClockSet(BaseModel):
    market: Literal["open", "closed", "calendar"]


class ReconcileReport(BaseModel):
    orders_checked: int = 0
    orders_healed: int = 0
    fills_healed: int = 0
    corrections_healed: int = 0
    journals_executed: int = 0
    accounts_checked: int = 0
    alerts: int = 0
