"""Messages: the customer's Matrix rooms through PULL's API (market rooms, DMs, alerts)."""

from __future__ import annotations

import re
import secrets
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pull.web.client import ApiError
from pull.web.web import Page

router = APIRouter(include_in_schema=False)


def _room_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ApiError(404, "ROOM_NOT_FOUND", "No such room.") from exc


@router.get("/messages")
async def rooms(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    found = await page.call("GET", "/api/v1/messages/rooms", params={"limit": 50})
    return page.render("messages/index.html", rooms=found["items"], title="Messages")


@router.get("/messages/{room_id}")
async def room(request: Request, room_id: str, before: str = "") -> Response:
    page = Page(request)
    page.require_login()
    rid = _room_id(room_id)
    found, history = await page.gather(
        page.call("GET", "/api/v1/messages/rooms", params={"limit": 50}),
        page.call(
            "GET", f"/api/v1/messages/rooms/{rid}/messages", params={"from": before, "limit": 50}
        ),
    )
    current = next((r for r in found["items"] if r["id"] == rid), None)
    if current is None:
        raise ApiError(404, "ROOM_NOT_FOUND", "You are not in that room.")
    return page.render(
        "messages/room.html",
        rooms=found["items"],
        room=current,
        items=list(reversed(history["items"])),  # oldest first, as a conversation reads
        older=history.get("next"),
        txn_id=secrets.token_urlsafe(16),
        title=current["name"],
    )


@router.post("/messages/join/market")
async def join_market(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    ticker = form.get("ticker", "").strip().upper()
    try:
        r = await page.call("POST", f"/api/v1/messages/rooms/market/{ticker}")
    except ApiError as exc:
        page.session.say(exc.human, "error")
        return page.redirect("/messages")
    return page.redirect(f"/messages/{r['id']}")


@router.post("/messages/dm")
async def direct(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    try:
        r = await page.call(
            "POST", "/api/v1/messages/dm", json={"user_id": form.get("user_id", "").strip()}
        )
    except ApiError as exc:
        page.session.say(exc.human, "error")
        return page.redirect("/messages")
    return page.redirect(f"/messages/{r['id']}")


# After /messages/dm: routes match in order, and {room_id} would take "dm".
@router.post("/messages/{room_id}")
async def send(request: Request, room_id: str) -> Response:
    page = Page(request)
    page.require_login()
    rid = _room_id(room_id)
    form = await page.form()
    body = form.get("body", "").strip()
    if not body:
        page.session.say("Write a message first.", "error")
        return page.redirect(f"/messages/{rid}")
    try:
        # The form's own id makes a double submit one message (Matrix txn_id).
        txn = form.get("txn_id", "")
        payload = {"body": body}
        if re.fullmatch(r"[A-Za-z0-9_-]{8,64}", txn):
            payload["txn_id"] = txn
        await page.call("POST", f"/api/v1/messages/rooms/{rid}/messages", json=payload)
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect(f"/messages/{rid}#composer")
