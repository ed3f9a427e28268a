"""The exchange service: the public API of the exchange for other modules and API surfaces.

Every function is keyword-only, takes the caller's session and never commits. Book changes
(placing, amending, decreasing, canceling orders; closing and resolving markets) first lock the
market row, so they are serialized per market; everything a placement does happens in the
caller's one transaction, and any error leaves nothing written.

The code lives in one module per reason to change; this module only names what is public:
- `markets`: series, events, markets and their lifecycle (open, pause, close, resolve)
- `placement`: order entry (validate, reserve, match, write, publish)
- `order_changes`: cancel, decrease, amend, expiry of resting orders
- `portfolio_reads`: a user's orders, fills, positions and settlements
- `market_data`: order book, trades, candlesticks
- `settlement`: paying a resolved market's positions from its escrow
- `money`: escrow and fee accounts, ledger transfers, trading-limit give-back
"""

from __future__ import annotations

from pull.exchange.engine import buy_hold, yes_price_of
from pull.exchange.market_data import get_candlesticks, get_orderbook, list_trades
from pull.exchange.markets import (
    SETTLEMENT_WORKFLOW,
    close_due_markets,
    create_event,
    create_market,
    create_series,
    get_event,
    get_events,
    get_market,
    get_series,
    list_events,
    list_markets,
    list_series,
    markets_of_events,
    open_due_markets,
    resolve_market,
    set_market_status,
)
from pull.exchange.money import escrow_account, fee_account
from pull.exchange.order_changes import amend_order, cancel_order, decrease_order, expire_orders
from pull.exchange.placement import create_order
from pull.exchange.portfolio_reads import (
    get_order,
    list_fills,
    list_orders,
    list_positions,
    list_settlements,
)
from pull.exchange.settlement import finalize_settlement, settle_batch

__all__ = [
    "SETTLEMENT_WORKFLOW",
    "amend_order",
    "cancel_order",
    "close_due_markets",
    "create_event",
    "create_market",
    "create_order",
    "create_series",
    "decrease_order",
    "escrow_account",
    "expire_orders",
    "fee_account",
    "finalize_settlement",
    "get_candlesticks",
    "get_event",
    "get_events",
    "get_market",
    "get_order",
    "get_orderbook",
    "get_series",
    "hold_for_buy",
    "list_events",
    "list_fills",
    "list_markets",
    "list_orders",
    "list_positions",
    "list_series",
    "list_settlements",
    "list_trades",
    "markets_of_events",
    "open_due_markets",
    "resolve_market",
    "set_market_status",
    "settle_batch",
    "yes_price_of",
]


def hold_for_buy(count: int, price: int, maker_fee_bps: int = 0) -> int:
    """What a resting buy of `count` at `price` (own side) holds."""
    return buy_hold(count, price, maker_fee_bps)
