"""Collectibles (RWA): assets, an offering with subscribe, the secondary book, buyout votes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pull.web.client import ApiError
from pull.web.web import Page

router = APIRouter(include_in_schema=False)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


@router.get("/collectibles")
async def collectibles(request: Request, q: str = "") -> Response:
    page = Page(request)
    page.require_login()
    if q.strip():
        found = await page.call("GET", "/api/v1/rwa/search", params={"q": q.strip()})
        assets = found.get("items", found) if isinstance(found, dict) else found
        listings = None
    else:
        listings = (await page.call("GET", "/api/v1/rwa/listings"))["items"]
        assets = None
    ownership = await page.call("GET", "/api/v1/rwa/ownership")
    return page.render(
        "rwa/index.html",
        listings=listings,
        assets=assets,
        ownership=ownership,
        q=q,
        title="Collectibles",
    )


@router.get("/collectibles/{asset_id}")
async def asset(request: Request, asset_id: str) -> Response:
    page = Page(request)
    page.require_login()
    a, book, trades, buyouts, orders, ownership = await page.gather(
        page.call("GET", f"/api/v1/rwa/assets/{asset_id}"),
        page.call("GET", f"/api/v1/rwa/assets/{asset_id}/orderbook", params={"depth": 10}),
        page.call("GET", f"/api/v1/rwa/assets/{asset_id}/trades", params={"limit": 10}),
        page.call("GET", f"/api/v1/rwa/assets/{asset_id}/buyouts"),
        page.call("GET", "/api/v1/rwa/orders", params={"asset_id": asset_id, "limit": 20}),
        page.call("GET", "/api/v1/rwa/ownership"),
    )
    trades, orders = trades["items"], orders["items"]
    holding: dict[str, Any] | None = next(
        (h for h in ownership["items"] if h["asset_id"] == asset_id), None
    )
    offering = next((o for o in a.get("offerings", []) if o["status"] == "open"), None)
    return page.render(
        "rwa/asset.html",
        a=a,
        book=book,
        trades=trades,
        buyouts=buyouts,
        orders=orders,
        holding=holding,
        offering=offering,
        title=a["title"],
    )


@router.post("/collectibles/{asset_id}/subscribe")
async def subscribe(request: Request, asset_id: str) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    body = {"shares": _int(form.get("shares"))}
    try:
        s = await page.call(
            "POST",
            f"/api/v1/rwa/offerings/{form.get('offering_id', '')}/subscribe",
            json=body,
            idempotent=True,
        )
        page.session.say(f"Subscribed to {s['shares']} shares for ${s['amount_cents'] / 100:,.2f}.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect(f"/collectibles/{asset_id}")


@router.post("/collectibles/{asset_id}/orders")
async def order(request: Request, asset_id: str) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    body = {
        "asset_id": asset_id,
        "side": "sell" if form.get("side") == "sell" else "buy",
        "price_cents": _int(form.get("price_cents")),
        "quantity": _int(form.get("quantity")),
    }
    try:
        o = await page.call("POST", "/api/v1/rwa/orders", json=body, idempotent=True)
        page.session.say(f"Order {o['status']}: {o['filled']} of {o['quantity']} filled.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect(f"/collectibles/{asset_id}")


@router.post("/collectibles/{asset_id}/orders/{order_id}/cancel")
async def cancel(request: Request, asset_id: str, order_id: str) -> Response:
    page = Page(request)
    page.require_login()
    await page.form()
    try:
        await page.call("DELETE", f"/api/v1/rwa/orders/{order_id}")
        page.session.say("Order canceled.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect(f"/collectibles/{asset_id}")


@router.post("/collectibles/{asset_id}/buyouts/{buyout_id}/vote")
async def vote(request: Request, asset_id: str, buyout_id: str) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    try:
        await page.call(
            "POST",
            f"/api/v1/rwa/buyouts/{buyout_id}/vote",
            json={"approve": form.get("approve") == "yes"},
        )
        page.session.say("Your vote is counted.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect(f"/collectibles/{asset_id}")
