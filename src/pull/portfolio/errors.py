"""Typed portfolio errors (mapped once by kit/errors)."""

from __future__ import annotations

from pull.kit.errors import BadRequest, NotFound


class InvalidPeriod(BadRequest):
    code = "INVALID_PERIOD"
    message = "period must be one of 1D, 1W, 1M, 3M, 1Y, ALL"


class InvalidTimeframe(BadRequest):
    code = "INVALID_TIMEFRAME"
    message = "timeframe must be one of 5Min, 1H, 1D"


class TimeframeNotAllowed(BadRequest):
    code = "TIMEFRAME_NOT_ALLOWED"
    message = "This timeframe is not offered for this period"


class InvalidYear(BadRequest):
    code = "INVALID_YEAR"
    message = "year must be between 2000 and next year"


class StatementNotFound(NotFound):
    code = "STATEMENT_NOT_FOUND"
    message = "No such statement"
