"""Typed brokerage errors (mapped to the error envelope by pull.kit.errors)."""

from __future__ import annotations

from pull.kit.errors import AppError, Conflict, Forbidden, NotFound, Unprocessable


class PriceNotAllowed(AppError):
    status_code = 400
    code = "PRICE_NOT_ALLOWED"
    message = "A market order takes no limit_price or stop_price"


class InvalidOrder(AppError):
    status_code = 400
    code = "INVALID_ORDER"
    message = "Invalid order"


class QtyOrNotional(AppError):
    status_code = 400
    code = "QTY_OR_NOTIONAL"
    message = "Give exactly one of qty or notional"


class OrderNotFound(NotFound):
    code = "ORDER_NOT_FOUND"
    message = "Order not found"


class AssetNotFound(NotFound):
    code = "ASSET_NOT_FOUND"
    message = "Unknown symbol"


class AssetNotTradable(Unprocessable):
    code = "ASSET_NOT_TRADABLE"
    message = "This asset cannot be traded"


class MarketClosed(Unprocessable):
    code = "MARKET_CLOSED"
    message = "The market is closed"


class OrderNotCancelable(Conflict):
    code = "ORDER_NOT_CANCELABLE"
    message = "The order can no longer be canceled"


class OrderNotReplaceable(Conflict):
    code = "ORDER_NOT_REPLACEABLE"
    message = "The order can no longer be replaced"


class InsufficientShares(Conflict):
    code = "INSUFFICIENT_SHARES"
    message = "Not enough shares to sell"


class OrderRejected(Unprocessable):
    code = "ORDER_REJECTED"
    message = "The broker rejected the order"


class BrokerAccountRequired(Forbidden):
    code = "BROKERAGE_ACCOUNT_REQUIRED"
    message = "Open a brokerage account first (POST /api/v1/trading/account)"


class KycDataMissing(Conflict):
    code = "KYC_DATA_MISSING"
    message = "No approved KYC application holds the data a broker account needs"


class BrokerageUnavailable(AppError):
    status_code = 503
    code = "BROKERAGE_UNAVAILABLE"
    message = "The broker is unavailable; try again"
