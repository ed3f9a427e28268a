"""Markets: the list (categories, search), a market's page (chart, ladder, ticket), orders."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pull.web.chart import price_chart
from pull.web.client import ApiError
from pull.web.ticket import estimate
from pull.web.web import Page

router = APIRouter(include_in_schema=False)

RANGES = {"6h": (6 * 3600, 1), "1w": (7 * 86400, 60), "3m": (90 * 86400, 1440)}
CANDLE_STEP = 10  # the chart's end, rounded up: pages within 10 s share their candles (web.cache)


@router.get("/markets")
async def markets(
    request: Request, q: str = "", category: str = "", status: str = "open", cursor: str = ""
) -> Response:
    page = Page(request)
    page.require_login()
    series, found = await page.gather(
        page.public("/api/v1/series"),
        page.call(  # one call with the user's token per page (web.cache)
            "GET",
            "/api/v1/markets",
            params={
                "q": q.strip(),
                "category": category,
                "status": status if status != "all" else None,
                "cursor": cursor,
                "limit": 30,
            },
        ),
    )
    categories = sorted({s["category"] for s in series if s.get("category")})
    template = "markets/_list.html" if page.htmx else "markets/index.html"
    return page.render(
        template,
        markets=found["items"],
        next_cursor=found["cursor"],
        categories=categories,
        q=q,
        category=category,
        status=status,
        title="Markets",
    )


async def _book(page: Page, ticker: str) -> dict[str, Any]:
    book: dict[str, Any] = await page.call(
        "GET", f"/api/v1/markets/{ticker}/orderbook", params={"depth": DEPTH}
    )
    return book


DEPTH = 10


def _ladder(book: dict[str, Any]) -> dict[str, Any]:
    """YES asks above (from NO bids), YES bids below: the ladder a trader reads. `pad_asks` and
    `pad_bids` are the empty rows that keep the ladder DEPTH rows a side, so a live update
    never moves the order ticket under a finger (or a click) by changing the ladder's height."""
    asks = sorted(((100 - p, c) for p, c in book.get("no", [])[:DEPTH]), reverse=True)
    bids = [(p, c) for p, c in book.get("yes", [])[:DEPTH]]
    return {
        "asks": asks,
        "bids": bids,
        "pad_asks": [None] * (DEPTH - len(asks)),
        "pad_bids": [None] * (DEPTH - len(bids)),
    }


@router.get("/markets/{ticker}")
async def market(request: Request, ticker: str, range: str = "6h") -> Response:
    page = Page(request)
    page.require_login()
    span, interval = RANGES.get(range, RANGES["6h"])
    now = -(-int(time.time()) // CANDLE_STEP) * CANDLE_STEP  # one key for CANDLE_STEP seconds
    m, book, candles, positions, fills = await page.gather(
        page.public(f"/api/v1/markets/{ticker}"),
        _book(page, ticker),
        page.optional(
            page.public(
                f"/api/v1/markets/{ticker}/candlesticks",
                params={"start_ts": now - span, "end_ts": now, "period_interval": interval},
            )
        ),
        page.call("GET", "/api/v1/positions", params={"ticker": ticker}),
        page.call("GET", "/api/v1/fills", params={"ticker": ticker, "limit": 10}),
    )
    chart = price_chart(candles["candlesticks"] if candles else [])
    return page.render(
        "markets/market.html",
        m=m,
        ladder=_ladder(book),
        chart=chart,
        range=range,
        ranges=list(RANGES),
        position=(positions["items"] or [None])[0],
        fills=fills["items"],
        title=m["title"],
    )


@router.get("/markets/{ticker}/book")
async def book_fragment(request: Request, ticker: str) -> Response:
    page = Page(request)
    page.require_login()
    m, book = await page.gather(page.call("GET", f"/api/v1/markets/{ticker}"), _book(page, ticker))
    return page.render("markets/_book.html", m=m, ladder=_ladder(book))


@router.get("/markets/{ticker}/fills")
async def fills_fragment(request: Request, ticker: str) -> Response:
    """The caller's fills in this market (the live stream asks for it after a fill)."""
    page = Page(request)
    page.require_login()
    fills = await page.call("GET", "/api/v1/fills", params={"ticker": ticker, "limit": 20})
    return page.render("markets/_fills.html", fills=fills["items"])


def _order_fields(form: dict[str, str]) -> tuple[str, str, int, int | None, str]:
    side = form.get("side") if form.get("side") in ("yes", "no") else "yes"
    action = form.get("action") if form.get("action") in ("buy", "sell") else "buy"
    kind = "limit" if form.get("type") == "limit" else "market"
    try:
        count = int(form.get("count") or 0)
    except ValueError:
        count = 0
    limit: int | None = None
    if kind == "limit":
        try:
            limit = int(form.get("price") or 0)
        except ValueError:
            limit = 0
    return str(side), str(action), count, limit, kind


@router.post("/markets/{ticker}/preview")
async def preview(request: Request, ticker: str) -> Response:
    """Cost, fee and payout of the order as typed, before it is sent."""
    page = Page(request)
    page.require_login()
    form = await page.form()
    side, action, count, limit, kind = _order_fields(form)
    m = await page.call("GET", f"/api/v1/markets/{ticker}")
    problem = None
    if count < 1:
        problem = "Enter how many contracts (1 or more)."
    elif kind == "limit" and not (limit and 1 <= limit <= 99):
        problem = "Enter a limit price from 1¢ to 99¢."
    est = None
    if problem is None:
        est = estimate(
            await _book(page, ticker),
            side=side,
            action=action,
            count=count,
            limit=limit,
            taker_fee_bps=m["taker_fee_bps"],
            maker_fee_bps=m["maker_fee_bps"],
        )
        if kind == "market" and est.filled < count:
            problem = (
                f"Only {est.filled} of {count} can trade now at the prices on the book; a quick "
                "order never rests, so the rest would be canceled."
            )
    return page.render(
        "markets/_preview.html", est=est, problem=problem, side=side, action=action, kind=kind
    )


@router.post("/markets/{ticker}/orders")
async def place(request: Request, ticker: str) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    side, action, count, limit, kind = _order_fields(form)
    body: dict[str, Any] = {
        "ticker": ticker,
        "side": side,
        "action": action,
        "count": count,
        "type": kind,
    }
    if kind == "limit":
        body["yes_price" if side == "yes" else "no_price"] = limit
    try:
        order = await page.call("POST", "/api/v1/orders", json=body, idempotent=True)
    except ApiError as exc:
        return page.render("_message.html", kind="error", message=exc.human, error=exc)
    response = page.render("markets/_placed.html", order=order)
    response.headers["HX-Trigger"] = "pull:book"  # the ladder refreshes at once
    return response


@router.get("/orders")
async def orders(request: Request, status: str = "") -> Response:
    page = Page(request)
    page.require_login()
    found, fills, positions, settlements = await page.gather(
        page.call("GET", "/api/v1/orders", params={"status": status or None, "limit": 50}),
        page.call("GET", "/api/v1/fills", params={"limit": 50}),
        page.call("GET", "/api/v1/positions", params={"limit": 50}),
        page.call("GET", "/api/v1/settlements", params={"limit": 20}),
    )
    return page.render(
        "markets/orders.html",
        orders=found["items"],
        fills=fills["items"],
        positions=positions["items"],
        settlements=settlements["items"],
        status=status,
        title="Orders and fills",
    )


@router.post("/orders/{order_id}/cancel")
async def cancel(request: Request, order_id: str) -> Response:
    page = Page(request)
    page.require_login()
    await page.form()
    try:
        await page.call("DELETE", f"/api/v1/orders/{order_id}")
        page.session.say("Order canceled.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/orders")
