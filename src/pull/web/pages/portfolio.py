"""Portfolio: holdings with P&L, the equity chart, realized gains, monthly statements."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pull.web.client import ApiError
from pull.web.web import Page

router = APIRouter(include_in_schema=False)

PERIODS = ("1D", "1W", "1M", "3M", "1Y", "ALL")
# The API draws the chart; the page inlines it, so only what our own API drew is embedded.
_SVG = re.compile(r"^\s*(<\?xml[^>]*>\s*)?<svg[\s>]", re.S)


@router.get("/portfolio")
async def portfolio(request: Request, period: str = "1M") -> Response:
    page = Page(request)
    page.require_login()
    period = period if period in PERIODS else "1M"
    data, history, chart, statements, realized = await page.gather(
        page.call("GET", "/api/v1/portfolio"),
        page.optional(page.call("GET", "/api/v1/portfolio/history", params={"period": period})),
        page.optional(page.call("GET", "/api/v1/portfolio/chart.svg", params={"period": period})),
        page.call("GET", "/api/v1/portfolio/statements", params={"limit": 12}),
        page.optional(page.call("GET", "/api/v1/portfolio/realized", params={"limit": 20})),
    )
    svg = chart if isinstance(chart, str) and _SVG.match(chart) else None
    change = None
    if history and history.get("profit_loss_pct"):
        change = history["profit_loss_pct"][-1]
    return page.render(
        "portfolio/index.html",
        p=data,
        chart_svg=svg,
        change=change,
        period=period,
        periods=PERIODS,
        statements=statements["items"],
        realized=realized,
        title="Portfolio",
    )


@router.get("/portfolio/statements/{statement_id}.{ext}")
async def statement_file(request: Request, statement_id: str, ext: str) -> Response:
    """The caller's statement, fetched from the API with their token (the API answers 404 for
    anybody else's)."""
    page = Page(request)
    page.require_login()
    if ext not in ("pdf", "csv") or not re.fullmatch(r"[0-9a-fA-F-]{36}", statement_id):
        raise ApiError(404, "NOT_FOUND", "No such statement.")
    r: Any = await page.call("GET", f"/api/v1/portfolio/statements/{statement_id}.{ext}", raw=True)
    media = "application/pdf" if ext == "pdf" else "text/csv; charset=utf-8"
    return Response(
        r.content,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="pull-statement-{statement_id}.{ext}"'
        },
    )
