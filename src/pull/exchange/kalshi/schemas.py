"""Request and response shapes of the Kalshi-compatible Trade API v2 (`/trade-api/v2`).

Field names, units and enums follow Kalshi's Trade API v2: prices in integer cents next to
`*_dollars` fixed-point strings ("0.5600"), counts as integers next to `*_fp` strings
("10.00"), RFC 3339 timestamps. Where Kalshi's documentation and the models of its official
Python SDK (kalshi-python 2.1.4) name a field differently, both names are served (for example
`market_positions` and `positions`, `initial_count` and `count`). docs/kalshi-compatibility.md
lists every field and where it comes from.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

KalshiMarketStatus = Literal["initialized", "active", "inactive", "closed", "determined", "settled"]
KalshiOrderStatus = Literal["pending", "resting", "canceled", "executed"]
Side = Literal["yes", "no"]
Action = Literal["buy", "sell"]
TimeInForce = Literal["good_till_canceled", "immediate_or_cancel", "fill_or_kill"]
SelfTradePrevention = Literal["taker_at_cross", "maker"]

# --- errors ---------------------------------------------------------------------------------


class KalshiError(BaseModel):
    code: str = Field(examples=["MARKET_NOT_FOUND"])
    message: str
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    error: KalshiError


class BatchItemError(BaseModel):
    """A refused item of a batch. The documentation puts code/message at this level, the
    SDK's model nests them under `error`: both are present."""

    code: str
    message: str
    details: dict[str, Any] | None = None
    error: KalshiError


# --- exchange -------------------------------------------------------------------------------


class ExchangeStatus(BaseModel):
    exchange_active: bool
    trading_active: bool
    exchange_estimated_resume_time: dt.datetime | None = None


class DailySchedule(BaseModel):
    open_time: str
    close_time: str


class WeeklySchedule(BaseModel):
    start_time: dt.datetime
    end_time: dt.datetime
    monday: list[DailySchedule]
    tuesday: list[DailySchedule]
    wednesday: list[DailySchedule]
    thursday: list[DailySchedule]
    friday: list[DailySchedule]
    saturday: list[DailySchedule]
    sunday: list[DailySchedule]


class Schedule(BaseModel):
    standard_hours: list[WeeklySchedule]
    maintenance_windows: list[dict[str, Any]]
    # SDK 2.1.4 reads one DailySchedule per weekday straight under `schedule`.
    monday: DailySchedule
    tuesday: DailySchedule
    wednesday: DailySchedule
    thursday: DailySchedule
    friday: DailySchedule
    saturday: DailySchedule
    sunday: DailySchedule


class GetExchangeScheduleResponse(BaseModel):
    schedule: Schedule


class GetExchangeAnnouncementsResponse(BaseModel):
    announcements: list[dict[str, Any]]


# --- series, events, markets ----------------------------------------------------------------


class Series(BaseModel):
    ticker: str
    title: str
    category: str
    frequency: str
    tags: list[str]
    settlement_sources: list[dict[str, str]]
    contract_url: str = ""
    contract_terms_url: str = ""
    additional_prohibitions: list[str] = Field(default_factory=list)


class GetSeriesListResponse(BaseModel):
    series: list[Series]
    cursor: str = ""


class GetSeriesResponse(BaseModel):
    series: Series


class PriceRange(BaseModel):
    start: str
    end: str
    step: str


class Market(BaseModel):
    # Kalshi SDK 3.x (current) fields
    created_time: dt.datetime
    updated_time: dt.datetime
    yes_bid_size_fp: str = "0.00"
    yes_ask_size_fp: str = "0.00"
    # PULL keeps no 24-hour-old top of book: zero, as Kalshi sends for a market without history
    previous_yes_bid_dollars: str = "0.0000"
    previous_yes_ask_dollars: str = "0.0000"
    previous_price_dollars: str = "0.0000"
    settlement_bounds_type: str = "default"
    exchange_index: int = 0
    ticker: str
    event_ticker: str
    series_ticker: str | None = None
    market_type: Literal["binary"] = "binary"
    title: str
    subtitle: str
    yes_sub_title: str
    no_sub_title: str
    open_time: dt.datetime
    close_time: dt.datetime
    expiration_time: dt.datetime
    expected_expiration_time: dt.datetime | None
    latest_expiration_time: dt.datetime
    settlement_timer_seconds: int = 0
    status: KalshiMarketStatus
    response_price_units: Literal["usd_cent"] = "usd_cent"
    notional_value: int = 100
    notional_value_dollars: str = "1.0000"
    tick_size: int
    yes_bid: int = Field(description="Best YES bid in cents; 0 when there is none")
    yes_bid_dollars: str
    yes_ask: int = Field(description="Best YES ask in cents; 100 when there is none")
    yes_ask_dollars: str
    no_bid: int
    no_bid_dollars: str
    no_ask: int
    no_ask_dollars: str
    last_price: int = Field(description="Last trade's YES price in cents; 0 before any trade")
    last_price_dollars: str
    volume: int
    volume_fp: str
    volume_24h: int
    volume_24h_fp: str
    open_interest: int
    open_interest_fp: str
    liquidity: int
    liquidity_dollars: str
    result: Literal["yes", "no", ""]
    can_close_early: bool = True
    expiration_value: str = ""
    category: str
    rules_primary: str
    rules_secondary: str
    settlement_value: int | None = None
    settlement_value_dollars: str | None = None
    settlement_ts: dt.datetime | None = None
    price_level_structure: str = "linear_cent"
    price_ranges: list[PriceRange]
    fractional_trading_enabled: bool = False
    # PULL extensions: fee schedule and the raw result (which can be "void").
    taker_fee_bps: int
    maker_fee_bps: int
    pull_result: Literal["yes", "no", "void"] | None


class GetMarketsResponse(BaseModel):
    markets: list[Market]
    cursor: str


class GetMarketResponse(BaseModel):
    market: Market


class Event(BaseModel):
    event_ticker: str
    series_ticker: str
    title: str
    sub_title: str
    category: str
    mutually_exclusive: bool
    collateral_return_type: str = ""
    status: Literal["open", "closed", "settled"] | None = Field(
        None, description="Only when the markets were read (with_nested_markets or status)"
    )
    markets: list[Market] | None = None


class GetEventsResponse(BaseModel):
    events: list[Event]
    cursor: str


class GetEventResponse(BaseModel):
    event: Event
    markets: list[Market]


# --- market data ----------------------------------------------------------------------------


class OrderbookLevel(BaseModel):
    price: int
    count: int


class Orderbook(BaseModel):
    """YES and NO bids, ascending by price (the best bid is the last element)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    yes: list[tuple[int, int]] = Field(description="[price in cents, count]")
    no: list[tuple[int, int]]
    yes_dollars: list[tuple[str, int]]
    no_dollars: list[tuple[str, int]]
    # SDK 2.1.4 reads the two ladders as `true` / `false` lists of {price, count}.
    sdk_yes: list[OrderbookLevel] = Field(alias="true")
    sdk_no: list[OrderbookLevel] = Field(alias="false")


class OrderbookFp(BaseModel):
    yes_dollars: list[tuple[str, str]]
    no_dollars: list[tuple[str, str]]


class GetMarketOrderbookResponse(BaseModel):
    orderbook: Orderbook
    orderbook_fp: OrderbookFp


class Trade(BaseModel):
    taker_outcome_side: str = ""
    taker_book_side: Literal["bid", "ask"] = "bid"
    is_block_trade: bool = False
    trade_id: str
    ticker: str
    count: int
    count_fp: str
    yes_price: int
    no_price: int
    yes_price_dollars: str
    no_price_dollars: str
    price: int = Field(description="The YES price in cents (SDK field)")
    taker_side: Side
    created_time: dt.datetime


class GetTradesResponse(BaseModel):
    trades: list[Trade]
    cursor: str


class OHLC(BaseModel):
    open: int | None
    high: int | None
    low: int | None
    close: int | None
    open_dollars: str | None
    high_dollars: str | None
    low_dollars: str | None
    close_dollars: str | None


class Candlestick(BaseModel):
    end_period_ts: int
    price: OHLC
    yes_bid: OHLC
    yes_ask: OHLC
    volume: int
    volume_fp: str
    open_interest: int
    open_interest_fp: str
    # SDK 2.1.4's flat candle: the trade-price OHLC and the period's bounds.
    start_ts: int
    end_ts: int
    open: int | None
    high: int | None
    low: int | None
    close: int | None


class GetMarketCandlesticksResponse(BaseModel):
    ticker: str
    candlesticks: list[Candlestick]


# --- portfolio ------------------------------------------------------------------------------


class GetBalanceResponse(BaseModel):
    balance_dollars: str = "0.0000"
    balance: int = Field(description="Cash available to trade, cents")
    portfolio_value: int = Field(description="Cents paid for the contracts held (cost basis)")
    updated_ts: int


class Order(BaseModel):
    order_id: str
    user_id: str
    client_order_id: str
    ticker: str
    side: Side
    action: Action
    outcome_side: Side
    book_side: Literal["bid", "ask"]
    type: Literal["limit", "market"]
    status: KalshiOrderStatus
    yes_price: int
    no_price: int
    yes_price_dollars: str
    no_price_dollars: str
    count: int = Field(description="The order's size (SDK field; = initial_count)")
    initial_count: int
    initial_count_fp: str
    fill_count: int
    fill_count_fp: str
    remaining_count: int
    remaining_count_fp: str
    taker_fees: int
    taker_fees_dollars: str
    maker_fees: int
    maker_fees_dollars: str
    taker_fill_cost: int
    taker_fill_cost_dollars: str
    maker_fill_cost: int
    maker_fill_cost_dollars: str
    queue_position: int | None = None
    expiration_time: dt.datetime | None
    created_time: dt.datetime
    last_update_time: dt.datetime
    updated_time: dt.datetime = Field(description="SDK field; = last_update_time")
    self_trade_prevention_type: SelfTradePrevention
    order_group_id: str | None = None
    cancel_order_on_pause: bool = False
    time_in_force: TimeInForce
    post_only: bool
    reduce_only: bool
    buy_max_cost: int | None


class GetOrdersResponse(BaseModel):
    orders: list[Order]
    cursor: str


class GetOrderResponse(BaseModel):
    order: Order


class CreateOrderResponse(BaseModel):
    order: Order


class AmendOrderResponse(BaseModel):
    old_order: Order
    order: Order


class DecreaseOrderResponse(BaseModel):
    order: Order


class CancelOrderResponse(BaseModel):
    order: Order
    reduced_by: int
    reduced_by_fp: str


class GetOrderQueuePositionResponse(BaseModel):
    queue_position: int


class BatchCreateItem(BaseModel):
    order: Order | None = None
    error: BatchItemError | None = None
    client_order_id: str | None = None


class BatchCreateOrdersResponse(BaseModel):
    orders: list[BatchCreateItem]
    responses: list[BatchCreateItem] = Field(description="SDK field; the same items as orders")


class BatchCancelItem(BaseModel):
    order_id: str
    order: Order | None = None
    reduced_by: int
    reduced_by_fp: str
    error: BatchItemError | None = None


class BatchCancelOrdersResponse(BaseModel):
    orders: list[BatchCancelItem]
    responses: list[BatchCancelItem] = Field(description="SDK field; the same items as orders")


class Fill(BaseModel):
    exchange_index: int = 0
    outcome_side: Literal["yes", "no"] = "yes"
    book_side: Literal["bid", "ask"] = "bid"
    fill_id: str
    trade_id: str
    order_id: str
    ticker: str
    market_ticker: str
    side: Side
    action: Action
    count: int
    count_fp: str
    yes_price: int
    no_price: int
    yes_price_dollars: str
    no_price_dollars: str
    price: int = Field(description="Cents paid per contract on the fill's side (SDK field)")
    is_taker: bool
    fee_cost: str = Field(description="Fee in dollars")
    fee: int = Field(description="Fee in cents (PULL extension)")
    created_time: dt.datetime
    ts: int


class GetFillsResponse(BaseModel):
    fills: list[Fill]
    cursor: str


class MarketPosition(BaseModel):
    exchange_index: int = 0
    ticker: str
    event_ticker: str
    position: int = Field(description="YES contracts > 0, NO contracts < 0")
    position_fp: str
    market_exposure: int
    market_exposure_dollars: str
    realized_pnl: int
    realized_pnl_dollars: str
    total_traded: int
    total_traded_dollars: str
    fees_paid: int
    fees_paid_dollars: str
    resting_orders_count: int
    resting_order_count: int = Field(description="SDK spelling of resting_orders_count")
    total_cost: int = Field(description="SDK field: cents paid for the contracts held")
    total_cost_dollars: str
    last_updated_ts: dt.datetime


class EventPosition(BaseModel):
    event_ticker: str
    total_cost: int
    total_cost_dollars: str
    total_cost_shares: int
    total_cost_shares_fp: str
    event_exposure: int
    event_exposure_dollars: str
    realized_pnl: int
    realized_pnl_dollars: str
    fees_paid: int
    fees_paid_dollars: str
    resting_order_count: int


class GetPositionsResponse(BaseModel):
    market_positions: list[MarketPosition]
    event_positions: list[EventPosition]
    positions: list[MarketPosition] = Field(description="SDK field; = market_positions")
    cursor: str


class Settlement(BaseModel):
    exchange_index: int = 0
    yes_total_cost_dollars: str = "0.0000"
    no_total_cost_dollars: str = "0.0000"
    # PULL charges no fee at settlement
    fee_cost: str = "0.0000"
    ticker: str
    event_ticker: str | None
    market_result: Literal["yes", "no", "void"]
    result: Literal["yes", "no", "void"] = Field(description="SDK field; = market_result")
    yes_count: int
    yes_count_fp: str
    no_count: int
    no_count_fp: str
    revenue: int = Field(description="Cents paid out")
    revenue_dollars: str
    cost_basis: int = Field(description="Cents paid for the contracts settled (PULL extension)")
    settled_time: dt.datetime


class GetSettlementsResponse(BaseModel):
    settlements: list[Settlement]
    cursor: str


class GetTotalRestingOrderValueResponse(BaseModel):
    total_resting_order_value: int = Field(description="Cents held for resting buy orders")


# --- requests -------------------------------------------------------------------------------


class CreateOrderRequest(BaseModel):
    ticker: str
    side: Side
    action: Action
    count: int | None = Field(None, ge=1)
    count_fp: str | None = None
    type: Literal["limit", "market"] = "limit"
    yes_price: int | None = Field(None, ge=1, le=99)
    no_price: int | None = Field(None, ge=1, le=99)
    yes_price_dollars: str | None = None
    no_price_dollars: str | None = None
    expiration_ts: int | None = None
    time_in_force: TimeInForce | None = None
    client_order_id: str | None = None
    post_only: bool = False
    reduce_only: bool = False
    sell_position_floor: int | None = Field(
        None, description="Deprecated by Kalshi; 0 means reduce_only"
    )
    buy_max_cost: int | None = Field(None, ge=1)
    self_trade_prevention_type: SelfTradePrevention | None = None
    order_group_id: str | None = Field(None, description="Not supported: order groups")
    cancel_order_on_pause: bool | None = Field(None, description="Not supported")


class AmendOrderRequest(BaseModel):
    ticker: str | None = None
    side: Side | None = None
    action: Action | None = None
    client_order_id: str | None = None
    updated_client_order_id: str | None = None
    yes_price: int | None = Field(None, ge=1, le=99)
    no_price: int | None = Field(None, ge=1, le=99)
    yes_price_dollars: str | None = None
    no_price_dollars: str | None = None
    count: int | None = Field(None, ge=1, description="New total size, filled part included")
    count_fp: str | None = None


class DecreaseOrderRequest(BaseModel):
    reduce_by: int | None = Field(None, ge=1)
    reduce_by_fp: str | None = None
    reduce_to: int | None = Field(None, ge=0)
    reduce_to_fp: str | None = None


class BatchCreateOrdersRequest(BaseModel):
    orders: list[CreateOrderRequest] = Field(min_length=1, max_length=20)


class BatchCancelOrder(BaseModel):
    order_id: str


class BatchCancelOrdersRequest(BaseModel):
    ids: list[str] | None = Field(None, description="Kalshi's (deprecated) field")
    order_ids: list[str] | None = Field(None, description="SDK 2.1.4's field")
    orders: list[BatchCancelOrder] | None = Field(None, description="Kalshi's current field")


# --- API keys -------------------------------------------------------------------------------


class ApiKey(BaseModel):
    api_key_id: str
    name: str
    scopes: list[str]
    created_ts: dt.datetime


class GetApiKeysResponse(BaseModel):
    api_keys: list[ApiKey]


class CreateApiKeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    public_key: str = Field(max_length=10_000, description="RSA public key (PEM), 2048+ bits")


class CreateApiKeyResponse(BaseModel):
    api_key_id: str


class GenerateApiKeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class GenerateApiKeyResponse(BaseModel):
    api_key_id: str
    private_key: str = Field(description="PEM (PKCS#8); shown once, PULL keeps only the public")
