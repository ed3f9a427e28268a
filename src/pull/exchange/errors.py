"""Typed errors of the exchange (part of its public contract)."""

from __future__ import annotations

from pull.kit.errors import BadRequest, Conflict, Forbidden, NotFound


class SeriesNotFound(NotFound):
    code = "SERIES_NOT_FOUND"
    message = "Series not found"


class EventNotFound(NotFound):
    code = "EVENT_NOT_FOUND"
    message = "Event not found"


class MarketNotFound(NotFound):
    code = "MARKET_NOT_FOUND"
    message = "Market not found"


class OrderNotFound(NotFound):
    code = "ORDER_NOT_FOUND"
    message = "Order not found"


class TickerTaken(Conflict):
    code = "TICKER_EXISTS"
    message = "A series, event or market with this ticker already exists"


class MarketClosed(Conflict):
    code = "MARKET_CLOSED"
    message = "The market is not open for trading"


class MarketPaused(Conflict):
    code = "MARKET_PAUSED"
    message = "Trading in this market is paused"


class InvalidTransition(Conflict):
    code = "INVALID_MARKET_TRANSITION"
    message = "The market cannot move to that status from its current one"


class InvalidPrice(BadRequest):
    code = "INVALID_PRICE"
    message = "Prices are whole cents from 1 to 99"


class InvalidOrder(BadRequest):
    code = "INVALID_ORDER"
    message = "Invalid order"


class PostOnlyWouldCross(Conflict):
    code = "POST_ONLY_WOULD_CROSS"
    message = "A post-only order may not cross the book"


class InsufficientPosition(Conflict):
    code = "INSUFFICIENT_POSITION"
    message = "You can only sell contracts you hold (and have not already offered)"


class OrderNotResting(Conflict):
    code = "ORDER_NOT_RESTING"
    message = "The order is no longer resting"


class ClientOrderIdConflict(Conflict):
    code = "CLIENT_ORDER_ID_CONFLICT"
    message = "This client_order_id was already used for a different order"


class ConflictOfInterest(Forbidden):
    code = "CONFLICT_OF_INTEREST"
    message = (
        "An administrator cannot resolve a market in which they hold a position or a resting order"
    )
