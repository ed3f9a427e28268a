"""Exact arithmetic for shares, prices and cents (Decimal in, integer cents out; no float)."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

QTY_PLACES = Decimal("0.000000001")  # 9 decimals: Alpaca's fractional precision
PRICE_PLACES = Decimal("0.000000001")
CENT = Decimal("0.01")


def to_decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        out = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return out if out.is_finite() else None


def cents_of(dollars: Decimal) -> int:
    """Dollars to cents, half up (how a cumulative fill's cost is rounded on both sides)."""
    return int((dollars * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def cents_ceil(dollars: Decimal) -> int:
    return int((dollars * 100).quantize(Decimal(1), rounding=ROUND_CEILING))


def dollars(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def qty_floor(value: Decimal) -> Decimal:
    return value.quantize(QTY_PLACES, rounding=ROUND_DOWN)


def avg_price(notional: Decimal, qty: Decimal) -> Decimal:
    return (notional / qty).quantize(PRICE_PLACES, rounding=ROUND_HALF_UP)


def cum_cents(filled_qty: Decimal, filled_avg_price: Decimal | None) -> int:
    """The cash a cumulative fill state is worth: round_half_up(filled_qty x avg price).

    Both the sandbox broker and PULL use this, so PULL's ledger and the broker's cash move by
    the same cents; each execution moves the difference between two cumulative states."""
    if filled_avg_price is None or filled_qty == 0:
        return 0
    return cents_of(filled_qty * filled_avg_price)


def places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def fmt(value: Decimal | None) -> str | None:
    """A decimal as Alpaca writes numbers: a plain string, no exponent, no trailing zeros."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return text


def plain(value: Decimal) -> Decimal:
    """The same number without trailing zeros or an exponent (0.010000000 -> 0.01)."""
    return Decimal(format(value.normalize(), "f"))


def plain_or_none(value: Decimal | None) -> Decimal | None:
    return None if value is None else plain(value)
