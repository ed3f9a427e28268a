"""Notifications: the inbox (unread first to see), mark read, preferences, price alerts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pull.web.client import ApiError
from pull.web.web import Page

router = APIRouter(include_in_schema=False)

CHANNELS = ("in_app", "email", "push", "matrix")


@router.get("/notifications")
async def inbox(request: Request, cursor: str = "") -> Response:
    page = Page(request)
    page.require_login()
    found, prefs, alerts = await page.gather(
        page.call("GET", "/api/v1/notifications", params={"cursor": cursor, "limit": 30}),
        page.call("GET", "/api/v1/notifications/preferences"),
        page.call("GET", "/api/v1/alerts", params={"limit": 20}),
    )
    types = sorted({p["type"] for p in prefs["preferences"]})
    enabled = {(p["type"], p["channel"]) for p in prefs["preferences"] if p["enabled"]}
    return page.render(
        "notifications.html",
        items=found["items"],
        next_cursor=found["cursor"],
        unread=found["unread_count"],
        prefs=prefs,
        types=types,
        channels=CHANNELS,
        enabled=enabled,
        alerts=alerts["items"],
        title="Notifications",
    )


@router.post("/notifications/read")
async def mark_read(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    ids = [form["id"]] if form.get("id") else None
    try:
        await page.call("POST", "/api/v1/notifications/read", json={"ids": ids})
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/notifications")


@router.post("/notifications/preferences")
async def preferences(request: Request) -> Response:
    """Every (type, channel) box of the form: checked ones on, the others off."""
    page = Page(request)
    page.require_login()
    await page.form()
    data = await request.form()
    prefs = await page.call("GET", "/api/v1/notifications/preferences")
    chosen = {str(v) for k, v in data.multi_items() if k == "on"}
    body: dict[str, Any] = {
        "preferences": [
            {
                "type": p["type"],
                "channel": p["channel"],
                "enabled": f"{p['type']}:{p['channel']}" in chosen,
            }
            for p in prefs["preferences"]
        ]
    }
    tz = str(data.get("time_zone") or "").strip()
    if tz:
        body["time_zone"] = tz
    start, end = str(data.get("quiet_start") or ""), str(data.get("quiet_end") or "")
    if start and end:
        body["quiet_hours"] = {"start": start, "end": end}
    elif prefs.get("quiet_hours"):
        body["clear_quiet_hours"] = True
    try:
        await page.call("PUT", "/api/v1/notifications/preferences", json=body)
        page.session.say("Notification settings saved.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/notifications#prefs-h")


@router.post("/notifications/alerts")
async def create_alert(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    direction = "below" if form.get("direction") == "below" else "above"
    try:
        price = int(form.get("price") or 0)
    except ValueError:
        price = 0
    body = {"ticker": form.get("ticker", "").strip().upper(), direction: price}
    try:
        a = await page.call("POST", "/api/v1/alerts", json=body)
        page.session.say(f"We will tell you when {a['ticker']} trades {direction} {a['price']}¢.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/notifications#alerts-h")


@router.post("/notifications/alerts/{alert_id}/cancel")
async def cancel_alert(request: Request, alert_id: str) -> Response:
    page = Page(request)
    page.require_login()
    await page.form()
    try:
        await page.call("DELETE", f"/api/v1/alerts/{alert_id}")
        page.session.say("Alert canceled.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/notifications#alerts-h")
