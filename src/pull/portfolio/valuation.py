"""One holding of the view valued at its mark, as the plain data of a `HoldingRead` (written
straight to JSON by `service.to_json`; 1,000 pydantic models cost more than the rest of the
view).

Contracts and RWA shares (and whole shares of a stock at a whole-cent mark) are valued in
integers: whole quantities times a whole-cent mark are exact, so the market value and day
change are the same numbers the `Decimal` arithmetic gives, for a fraction of its cost.
Fractional quantities or marks take the `Decimal` path (the value of each lot rounded down to
a cent, the day change rounded half-even, as `lots.day_change`). Quantities and the marks are
written as the decimal strings `PortfolioRead` writes for its `Decimal` fields."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from pull.portfolio.lot_cache import Book
from pull.portfolio.sources import Instrument

_FOUR = Decimal("0.0001")


def holding(inst: Instrument, book: Book, day: dt.datetime) -> dict[str, Any]:
    """`book` (open lots) valued at `inst`'s mark; at cost when it has none (`mark_source`
    `cost`, day change 0). Lots held before `day` change by quantity x (mark - previous close),
    lots bought since by market value - cost."""
    mark, source = inst.mark, inst.mark_source
    if mark is None:
        mark = Decimal(book.cost) / book.quantity
        source = "cost"
    m = int(mark)
    prev = inst.previous_close
    if book.whole is not None and m == mark and (prev is None or prev == int(prev)):
        lots, value, change = _whole(book, m, None if prev is None else int(prev), day)
        mark_text = f"{m}.0000"
    else:
        lots, value, change = _fractional(book, mark, prev, day)
        mark_text = str(mark.quantize(_FOUR))
    return {
        "kind": inst.kind,
        "symbol": inst.symbol,
        "name": inst.name,
        "quantity": book.quantity_text,
        "mark": mark_text,
        "mark_source": source,
        "market_value": value,
        "cost_basis": book.cost,
        "average_cost": book.average_cost,
        "unrealized_pnl": value - book.cost,
        "realized_pnl": book.realized,
        "day_change": change if source != "cost" else 0,
        "lots": lots,
    }


def _whole(
    book: Book, mark: int, prev: int | None, day: dt.datetime
) -> tuple[list[dict[str, Any]], int, int]:
    lots = []
    value = change = 0
    for acquired, _, q, text, cost in book.lots:
        assert q is not None  # book.whole: every lot is whole
        mv = q * mark
        value += mv
        if acquired >= day:
            change += mv - cost
        elif prev is not None:
            change += (mark - prev) * q
        lots.append(
            {
                "acquired_at": acquired,
                "quantity": text,
                "cost": cost,
                "market_value": mv,
                "unrealized_pnl": mv - cost,
            }
        )
    return lots, value, change


def _fractional(
    book: Book, mark: Decimal, prev: Decimal | None, day: dt.datetime
) -> tuple[list[dict[str, Any]], int, int]:
    lots = []
    value = 0
    change = Decimal(0)
    for acquired, quantity, _, text, cost in book.lots:
        mv = int((quantity * mark).to_integral_value(rounding=ROUND_FLOOR))
        value += mv
        if acquired >= day:
            change += mark * quantity - cost
        elif prev is not None:
            change += (mark - prev) * quantity
        lots.append(
            {
                "acquired_at": acquired,
                "quantity": text,
                "cost": cost,
                "market_value": mv,
                "unrealized_pnl": mv - cost,
            }
        )
    return lots, value, int(change.to_integral_value())
