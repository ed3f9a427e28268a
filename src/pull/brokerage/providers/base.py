"""The broker PULL embeds (Alpaca's Broker API model): the Protocol and its value types.

Numbers are `Decimal` (Alpaca sends decimal strings); no float crosses this boundary. Two
implementations: `alpaca.AlpacaBroker` (alpaca-py against Alpaca's Broker API, chosen when
ALPACA_BROKER_KEY / ALPACA_BROKER_SECRET are set) and `sandbox.SandboxBroker` (the default),
which behaves like Alpaca's sandbox and keeps its state in its own tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

# Alpaca's order statuses; terminal ones never change again (replaced: for the original).
ORDER_STATUSES = (
    "pending_new",
    "accepted",
    "new",
    "partially_filled",
    "filled",
    "done_for_day",
    "canceled",
    "expired",
    "replaced",
    "pending_cancel",
    "pending_replace",
    "accepted_for_bidding",
    "stopped",
    "rejected",
    "suspended",
    "calculated",
    "held",
)
TERMINAL = frozenset({"filled", "canceled", "expired", "rejected", "replaced"})
# Trade-update events: the statuses' events plus the ones that only report.
TRADE_EVENTS = frozenset(
    {
        "new",
        "fill",
        "partial_fill",
        "canceled",
        "expired",
        "done_for_day",
        "replaced",
        "rejected",
        "pending_new",
        "stopped",
        "pending_cancel",
        "pending_replace",
        "calculated",
        "suspended",
        "order_replace_rejected",
        "order_cancel_rejected",
        "trade_bust",
        "trade_correct",
        "restated",
        "held",
        "accepted",
    }
)


class BrokerError(Exception):
    """The broker answered with an error (its HTTP status and Alpaca's numeric code)."""

    def __init__(self, message: str, *, status: int, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class BrokerRejected(BrokerError):
    """A 4xx: the request will not succeed as it is (insufficient buying power, not
    cancelable, wash trade, unknown asset ...)."""


class BrokerNotFound(BrokerRejected):
    pass


class BrokerUnavailable(BrokerError):
    """A 5xx, a 429 or no answer: the outcome is unknown; look it up before retrying."""


@dataclass(frozen=True)
class Person:
    """The KYC data a broker account is opened with (never logged)."""

    def __repr__(self) -> str:
        return f"Person(reference={self.reference!r})"

    reference: str  # PULL's user id
    email: str
    given_name: str
    family_name: str
    date_of_birth: str  # YYYY-MM-DD
    phone: str
    street: str
    city: str
    state: str
    postal_code: str
    country: str
    tax_id_last4: str | None
    ip_address: str


@dataclass(frozen=True)
class BrokerAccount:
    id: str
    account_number: str
    status: str  # SUBMITTED, APPROVED, ACTIVE, REJECTED, ... (Alpaca's account statuses)
    cash: Decimal = Decimal(0)
    buying_power: Decimal = Decimal(0)


@dataclass(frozen=True)
class Journal:
    id: str
    from_account: str
    to_account: str
    amount: Decimal
    status: str  # queued, pending, executed, rejected, canceled
    description: str = ""


@dataclass(frozen=True)
class OrderRequest:
    symbol: str
    side: str  # buy | sell
    type: str  # market | limit | stop | stop_limit
    time_in_force: str  # day | gtc | ioc | fok
    client_order_id: str
    qty: Decimal | None = None
    notional: Decimal | None = None  # dollars, at most 2 decimals
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True)
class ReplaceRequest:
    client_order_id: str
    qty: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None


@dataclass(frozen=True)
class BrokerOrder:
    id: str
    client_order_id: str
    account_id: str
    symbol: str
    asset_class: str
    side: str
    type: str
    time_in_force: str
    status: str
    qty: Decimal | None
    notional: Decimal | None
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    created_at: dt.datetime
    updated_at: dt.datetime
    replaced_by: str | None = None
    replaces: str | None = None


@dataclass(frozen=True)
class TradeEvent:
    """One message of the trade events stream (Alpaca's `/v2/events/trades`)."""

    event_id: str  # ULID; `since_id` resumes after it
    event: str
    account_id: str
    order: BrokerOrder
    at: dt.datetime
    execution_id: str | None = None
    price: Decimal | None = None  # this execution's (fill, partial_fill)
    qty: Decimal | None = None
    position_qty: Decimal | None = None


@dataclass(frozen=True)
class BrokerPosition:
    symbol: str
    asset_class: str
    qty: Decimal
    avg_entry_price: Decimal
    cost_basis: Decimal
    current_price: Decimal
    market_value: Decimal


@dataclass(frozen=True)
class Asset:
    id: str
    symbol: str
    name: str
    asset_class: str  # us_equity | crypto
    exchange: str
    tradable: bool
    fractionable: bool
    status: str = "active"


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    at: dt.datetime
    market_open: bool = True


@dataclass(frozen=True)
class Snapshot:
    """What PULL reads of a market data snapshot (Alpaca's `GET /v2/stocks/snapshots`,
    `/v1beta3/crypto/us/snapshots`): the previous daily bar's close, the day change's base."""

    symbol: str
    previous_close: Decimal | None  # prevDailyBar.c, dollars per share
    previous_close_at: dt.datetime | None = None  # prevDailyBar.t, the bar's start


@dataclass
class Heartbeat:
    """Yielded by `trade_events` when the stream is idle (an SSE `:heartbeat` comment, or the
    sandbox caught up): a consumer that drains may stop there."""

    dropped: int = 0  # Alpaca's ": you are reading too slowly, dropped N messages"
    notes: list[str] = field(default_factory=list)


class Broker(Protocol):
    is_sandbox: bool

    async def firm_account_id(self) -> str: ...

    async def create_account(self, *, person: Person) -> BrokerAccount: ...

    async def get_account(self, *, account_id: str) -> BrokerAccount: ...

    async def create_journal(
        self, *, from_account: str, to_account: str, amount: Decimal, description: str
    ) -> Journal: ...

    async def find_journal(
        self, *, from_account: str, to_account: str, description: str, since: dt.date
    ) -> Journal | None:
        """The journal between the two accounts with this description made on or after
        `since` (Alpaca journals take no idempotency key: PULL's key is the description)."""
        ...

    async def submit_order(self, *, account_id: str, request: OrderRequest) -> BrokerOrder: ...

    async def get_order(self, *, account_id: str, order_id: str) -> BrokerOrder: ...

    async def get_order_by_client_id(
        self, *, account_id: str, client_order_id: str
    ) -> BrokerOrder | None: ...

    async def list_orders(
        self, *, account_id: str, after: dt.datetime | None = None, limit: int = 500
    ) -> list[BrokerOrder]: ...

    async def replace_order(
        self, *, account_id: str, order_id: str, request: ReplaceRequest
    ) -> BrokerOrder: ...

    async def cancel_order(self, *, account_id: str, order_id: str) -> None: ...

    async def list_positions(self, *, account_id: str) -> list[BrokerPosition]: ...

    async def list_assets(self, *, query: str | None = None) -> list[Asset]: ...

    async def get_asset(self, *, symbol: str) -> Asset | None: ...

    async def get_quote(self, *, symbol: str) -> Quote: ...

    async def get_snapshots(self, *, symbols: Sequence[str]) -> dict[str, Snapshot]:
        """The snapshots of these symbols (stocks and crypto in one call each); a symbol the
        broker has no data for is absent."""
        ...

    def trade_events(
        self, *, since_id: str | None, since: dt.datetime | None = None
    ) -> AsyncIterator[TradeEvent | Heartbeat]:
        """Trade events after `since_id` (or from `since`; neither: only new ones), forever;
        a `Heartbeat` whenever the stream is idle."""
        ...
