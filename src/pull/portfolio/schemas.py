"""Portfolio response shapes. Money in integer cents; quantities as decimal strings."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

HoldingKind = Literal["prediction", "rwa", "stock", "crypto", "points"]
MarkSource = Literal[
    "settlement",
    "mid",
    "last_trade",
    "offering_price",
    "quote_mid",
    "last_fill",
    "cost",
    "redemption_rate",
]


class TaxLotRead(BaseModel):
    acquired_at: dt.datetime
    quantity: Decimal
    cost: int = Field(description="Cents paid for this lot, fees included")
    market_value: int
    unrealized_pnl: int


class HoldingRead(BaseModel):
    kind: HoldingKind
    symbol: str = Field(description="Ticker (prediction: TICKER:YES|NO), share symbol or stock")
    name: str
    quantity: Decimal
    mark: Decimal = Field(description="Cents per unit the holding is valued at")
    mark_source: MarkSource = Field(description="How the mark was chosen (docs/portfolio.md)")
    market_value: int
    cost_basis: int = Field(description="FIFO: the cost of the open tax lots")
    average_cost: Decimal | None = Field(description="Cents per unit over the open lots")
    unrealized_pnl: int
    realized_pnl: int = Field(description="Closed lots of this holding: proceeds - cost")
    day_change: int | None = Field(description="Cents: vs. the previous close (lots held)")
    lots: list[TaxLotRead]


class CashRead(BaseModel):
    available: int
    held: int = Field(description="Reserved by open orders and pending withdrawals")
    pending: int = Field(description="Deposits initiated, not yet credited")
    total: int


class PointsRead(BaseModel):
    points: int = Field(description="Posted points (including those held for redemptions)")
    available: int
    cash_value: int = Field(description="Cents the points bring as a cash redemption")


class TotalsRead(BaseModel):
    value: int = Field(description="cash.total + holdings' market value (points included)")
    holdings_value: int
    cost_basis: int
    unrealized_pnl: int
    realized_pnl: int
    day_change: int
    net_deposits: int = Field(description="Deposited minus withdrawn through funding, ever")
    total_pnl: int = Field(description="value - net_deposits")
    other_pnl: int = Field(
        description="total_pnl - realized - unrealized: fees outside trades and points spent "
        "on anything but cash (docs/portfolio.md)"
    )


class PortfolioRead(BaseModel):
    as_of: dt.datetime
    cash: CashRead
    points: PointsRead
    holdings: list[HoldingRead]
    totals: TotalsRead


class HistoryRead(BaseModel):
    """Alpaca's portfolio-history shape (GET /v2/account/portfolio/history)."""

    timestamp: list[int] = Field(description="Unix seconds, oldest first")
    equity: list[float] = Field(description="Dollars")
    profit_loss: list[float] = Field(description="Dollars: equity - base_value - net flows")
    profit_loss_pct: list[float] = Field(
        description="Time-weighted return since the first point (0.01 = 1%)"
    )
    base_value: float
    base_value_asof: str | None = None
    timeframe: str
    cashflow: dict[str, list[float]] = Field(
        description="Dollars per point: CSD deposits, CSW withdrawals (Alpaca activity types)"
    )


class RealizedLotRead(BaseModel):
    symbol: str
    kind: HoldingKind
    description: str
    quantity: Decimal
    acquired_at: dt.datetime
    sold_at: dt.datetime
    proceeds: int
    cost: int
    gain: int
    holding_period: Literal["short", "long"]


class RealizedPage(BaseModel):
    year: int
    items: list[RealizedLotRead]
    cursor: str | None = None
    short_term_gain: int
    long_term_gain: int


class StatementRead(BaseModel):
    id: uuid.UUID
    month: str = Field(description="YYYY-MM")
    created_at: dt.datetime
    pdf_bytes: int
    csv_bytes: int


class StatementPage(BaseModel):
    items: list[StatementRead]
    cursor: str | None = None
