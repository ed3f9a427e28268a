"""Jinja filters: cents as dollars, prices as cents, times as people read them."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def money(cents: Any) -> str:
    if cents is None or cents == "":
        return "—"
    value = int(cents)
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}${value // 100:,}.{value % 100:02d}"


def price(cents: Any) -> str:
    """A contract price: 39 → 39¢."""
    if cents is None or cents == "":
        return "—"
    return f"{int(cents)}¢"


def when(value: Any) -> str:
    if not value:
        return "—"
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return dt.strftime("%b %d, %Y %H:%M UTC")


def points(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def pct(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


def label(value: Any) -> str:
    return str(value or "").replace("_", " ")


FILTERS = {"money": money, "price": price, "when": when, "points": points, "pct": pct}
FILTERS["label"] = label
GLOBALS: dict[str, Any] = {}
