"""Kalshi's units: cents beside `*_dollars` strings, counts beside `*_fp` strings, and the
constants the Trade API shares."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from pull.kit.errors import BadRequest

PREFIX = "/trade-api/v2"
DEFAULT_LIMIT = 100
# Kalshi counts each write as one transaction and each cancel in a batch as 0.2: the write
# tier is kept in fifths of a transaction (see pull.kit.ratelimit.LIMITS).
WRITE_COST = 5
BATCH_CANCEL_COST = 1
# How many service pages one response may read when a filter is applied on top of them.
MAX_FILTER_PAGES = 20


# --- units ------------------------------------------------------------------------------------


def dollars(cents: int) -> str:
    """Cents as Kalshi's fixed-point dollar string: 56 -> "0.5600", -1234 -> "-12.3400"."""
    sign = "-" if cents < 0 else ""
    a = abs(cents)
    return f"{sign}{a // 100}.{a % 100:02d}00"


def opt_dollars(cents: int | None) -> str | None:
    return None if cents is None else dollars(cents)


def fp(count: int) -> str:
    """A whole contract count as Kalshi's fixed-point count string: 10 -> "10.00"."""
    return f"{count}.00"


def _decimal(value: str, name: str) -> Decimal:
    try:
        d = Decimal(value.strip())
    except (InvalidOperation, AttributeError):
        raise BadRequest(f"{name} is not a decimal number", code="INVALID_PARAMETERS") from None
    if not d.is_finite():
        raise BadRequest(f"{name} is not a decimal number", code="INVALID_PARAMETERS")
    return d


def parse_dollars(value: str, name: str) -> int:
    """ "0.56" -> 56 cents; PULL prices are whole cents."""
    cents = _decimal(value, name) * 100
    if cents != cents.to_integral_value():
        raise BadRequest(f"{name} must be a whole number of cents", code="INVALID_PRICE")
    return int(cents)


def parse_fp(value: str, name: str) -> int:
    """ "10.00" -> 10; PULL trades whole contracts."""
    d = _decimal(value, name)
    if d != d.to_integral_value():
        raise BadRequest(
            f"{name}: PULL trades whole contracts only", code="FRACTIONAL_NOT_SUPPORTED"
        )
    return int(d)


def one_of(cents: int | None, dollars_value: str | None, name: str) -> int | None:
    """A price or count given as an integer, as a fixed-point string, or both (must agree)."""
    parsed = (
        None
        if dollars_value is None
        else (parse_fp if name.startswith(("count", "reduce")) else parse_dollars)(
            dollars_value, name + ("_fp" if name.startswith(("count", "reduce")) else "_dollars")
        )
    )
    if cents is not None and parsed is not None and cents != parsed:
        raise BadRequest(f"{name} and its fixed-point form disagree", code="INVALID_PARAMETERS")
    return cents if cents is not None else parsed


def to_ts(moment: dt.datetime) -> int:
    return int(moment.timestamp())
