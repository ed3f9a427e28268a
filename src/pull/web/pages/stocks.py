"""Stocks and crypto through the brokerage: account, quotes, orders, positions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pull.web.client import ApiError
from pull.web.web import Page

router = APIRouter(include_in_schema=False)


@router.get("/stocks")
async def stocks(request: Request, q: str = "", symbol: str = "") -> Response:
    page = Page(request)
    page.require_login()
    account: dict[str, Any] | None
    try:
        account = await page.call("GET", "/api/v1/trading/account")
    except ApiError as exc:
        if exc.status not in (403, 404, 409):
            raise
        account = None
    assets = (await page.call("GET", "/api/v1/trading/assets", params={"q": q.strip()}))["items"]
    quote = None
    if symbol:
        try:
            quote = await page.call("GET", f"/api/v1/trading/quotes/{symbol}")
        except ApiError as exc:
            page.session.say(exc.human, "error")
    positions = orders = []
    power = None
    if account:
        positions = (await page.call("GET", "/api/v1/trading/positions"))["items"]
        orders = (await page.call("GET", "/api/v1/trading/orders", params={"limit": 20}))["items"]
        power = await page.call("GET", "/api/v1/trading/buying-power")
    return page.render(
        "stocks.html",
        account=account,
        assets=assets[:30],
        quote=quote,
        symbol=symbol,
        q=q,
        positions=positions,
        orders=orders,
        power=power,
        title="Stocks and crypto",
    )


@router.post("/stocks/account")
async def open_account(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    await page.form()
    try:
        a = await page.call("POST", "/api/v1/trading/account")
        page.session.say(f"Brokerage account {a['account_number']} is {a['status'].lower()}.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/stocks")


@router.post("/stocks/orders")
async def order(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    symbol = form.get("symbol", "").strip().upper()
    body: dict[str, Any] = {"symbol": symbol, "side": form.get("side", "buy"), "type": "market"}
    amount = form.get("amount", "").strip()
    if form.get("by") == "dollars":
        try:
            body["notional"] = round(float(amount.replace("$", "")) * 100)
        except ValueError:
            body["notional"] = 0
    else:
        body["qty"] = amount
    try:
        o = await page.call("POST", "/api/v1/trading/orders", json=body, idempotent=True)
        page.session.say(f"{o['side'].title()} order for {o['symbol']}: {o['status']}.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect(f"/stocks?symbol={symbol}")
