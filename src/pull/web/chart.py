"""A price chart as inline SVG, drawn on the server from the API's candlesticks (no script)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT, PAD = 600, 200, 24


@dataclass(frozen=True)
class Chart:
    path: str  # SVG polyline points
    last: int | None
    low: int
    high: int
    points: int
    summary: str  # the same data in words, for screen readers
    grid: list[tuple[float, int]]  # (y, price) gridlines


def price_chart(candles: list[dict[str, Any]]) -> Chart:
    values = []
    for c in candles:
        close = (c.get("price") or {}).get("close")
        if close is None:
            bid, ask = (c.get("yes_bid") or {}).get("close"), (c.get("yes_ask") or {}).get("close")
            close = (bid + ask) // 2 if bid is not None and ask is not None else None
        if close is not None:
            values.append(int(close))
    if not values:
        return Chart("", None, 0, 100, 0, "No trades yet.", _grid(0, 100))
    low, high = max(0, min(values) - 5), min(100, max(values) + 5)
    span = max(high - low, 1)
    n = len(values)
    pts = []
    for i, v in enumerate(values):
        x = PAD + (WIDTH - 2 * PAD) * (i / (n - 1) if n > 1 else 0.5)
        y = PAD + (HEIGHT - 2 * PAD) * (1 - (v - low) / span)
        pts.append(f"{x:.1f},{y:.1f}")
    summary = (
        f"{n} periods; opened at {values[0]}¢, last {values[-1]}¢, "
        f"low {min(values)}¢, high {max(values)}¢."
    )
    return Chart(" ".join(pts), values[-1], low, high, n, summary, _grid(low, high))


def _grid(low: int, high: int) -> list[tuple[float, int]]:
    span = max(high - low, 1)
    out = []
    for i in range(5):
        value = low + round(span * i / 4)
        out.append((PAD + (HEIGHT - 2 * PAD) * (1 - (value - low) / span), value))
    return out
