"""Equity charts drawn server-side: SVG written by hand, PNG with Pillow (no plotting library).

Both draw the same thing: the equity line over time on a light grid, the first and last
values and dates as labels, green when the period's time-weighted return is >= 0, else red."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from PIL import Image, ImageDraw

UP = "#15803d"
DOWN = "#b91c1c"
GRID = "#e5e7eb"
TEXT = "#374151"


@dataclass(frozen=True, slots=True)
class ChartData:
    timestamps: Sequence[int]  # Unix seconds
    equity: Sequence[int]  # cents
    title: str
    up: bool


def _dollars(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) / 100:,.2f}"


def _day(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def _points(data: ChartData, width: int, height: int, pad: int) -> list[tuple[float, float]]:
    ts, eq = list(data.timestamps), list(data.equity)
    if not ts:
        return []
    t0, t1 = min(ts), max(ts)
    lo, hi = min(eq), max(eq)
    if hi == lo:
        lo, hi = lo - 100, hi + 100
    w, h = width - 2 * pad, height - 2 * pad

    def x(t: int) -> float:
        return pad + (w * (t - t0) / (t1 - t0) if t1 > t0 else w / 2)

    def y(v: int) -> float:
        return pad + h - h * (v - lo) / (hi - lo)

    return [(round(x(t), 1), round(y(v), 1)) for t, v in zip(ts, eq, strict=True)]


def equity_svg(data: ChartData, width: int = 640, height: int = 240) -> str:
    pad = 32
    pts = _points(data, width, height, pad)
    color = UP if data.up else DOWN
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(data.title)}">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for i in range(5):
        gy = pad + (height - 2 * pad) * i / 4
        parts.append(
            f'<line x1="{pad}" y1="{gy:.1f}" x2="{width - pad}" y2="{gy:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
    parts.append(
        f'<text x="{pad}" y="20" font-family="sans-serif" font-size="13" '
        f'fill="{TEXT}">{escape(data.title)}</text>'
    )
    if len(pts) == 1:
        (px, py) = pts[0]
        parts.append(f'<circle cx="{px}" cy="{py}" r="3" fill="{color}"/>')
    elif pts:
        line = " ".join(f"{px},{py}" for px, py in pts)
        parts.append(
            f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2" '
            'stroke-linejoin="round"/>'
        )
    if pts:
        first, last = data.equity[0], data.equity[-1]
        parts.append(
            f'<text x="{pad}" y="{height - 10}" font-family="sans-serif" font-size="11" '
            f'fill="{TEXT}">{_day(data.timestamps[0])} {escape(_dollars(first))}</text>'
        )
        parts.append(
            f'<text x="{width - pad}" y="{height - 10}" text-anchor="end" '
            f'font-family="sans-serif" font-size="11" fill="{TEXT}">'
            f"{_day(data.timestamps[-1])} {escape(_dollars(last))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def equity_png(data: ChartData, width: int = 640, height: int = 240) -> bytes:
    pad = 32
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    for i in range(5):
        gy = pad + (height - 2 * pad) * i / 4
        draw.line([(pad, gy), (width - pad, gy)], fill=GRID, width=1)
    draw.text((pad, 8), data.title, fill=TEXT)
    pts = _points(data, width, height, pad)
    color = UP if data.up else DOWN
    if len(pts) == 1:
        px, py = pts[0]
        draw.ellipse([(px - 3, py - 3), (px + 3, py + 3)], fill=color)
    elif pts:
        draw.line(pts, fill=color, width=2, joint="curve")
    if pts:
        draw.text(
            (pad, height - 20),
            f"{_day(data.timestamps[0])} {_dollars(data.equity[0])}",
            fill=TEXT,
        )
        right = f"{_day(data.timestamps[-1])} {_dollars(data.equity[-1])}"
        draw.text((width - pad - draw.textlength(right), height - 20), right, fill=TEXT)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()
