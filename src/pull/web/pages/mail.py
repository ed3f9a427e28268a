"""Mail: connect a mailbox, the inbox by category, search, a message with suggested replies."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pull.web.client import ApiError
from pull.web.web import Page

router = APIRouter(include_in_schema=False)

CATEGORIES = (
    "primary",
    "finance",
    "trading alerts",
    "updates",
    "social",
    "promotions",
    "forums",
)


def _message_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ApiError(404, "MESSAGE_NOT_FOUND", "No such message.") from exc


async def _mailbox(page: Page) -> dict[str, Any] | None:
    try:
        box: dict[str, Any] = await page.call("GET", "/api/v1/email/mailbox")
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    return box


@router.get("/mail")
async def inbox(request: Request, category: str = "", q: str = "", cursor: str = "") -> Response:
    page = Page(request)
    page.require_login()
    box = await _mailbox(page)
    items: list[dict[str, Any]] = []
    next_cursor = None
    if box is not None:
        if q.strip():
            found = await page.call("GET", "/api/v1/email/search", params={"q": q.strip()})
            items = [hit["message"] for hit in found["items"]]
        else:
            found = await page.call(
                "GET",
                "/api/v1/email/messages",
                params={"category": category or None, "cursor": cursor, "limit": 30},
            )
            items, next_cursor = found["items"], found.get("cursor")
    return page.render(
        "mail/index.html",
        box=box,
        items=items,
        next_cursor=next_cursor,
        category=category,
        categories=CATEGORIES,
        q=q,
        title="Mail",
    )


@router.post("/mail/connect")
async def connect(request: Request) -> Response:
    """A link to the provider's hosted sign-in (it comes back to /mail/callback). A link, not a
    redirect: the pages' CSP `form-action 'self'` rightly stops a form from landing elsewhere."""
    page = Page(request)
    page.require_login()
    form = await page.form()
    hint = form.get("login_hint", "").strip() or None
    try:
        r = await page.call("POST", "/api/v1/email/connect", json={"login_hint": hint})
    except ApiError as exc:
        page.session.say(exc.human, "error")
        return page.redirect("/mail")
    return page.render("mail/connect.html", auth_url=r["auth_url"], title="Connect your mailbox")


@router.get("/mail/callback")
async def callback(request: Request, code: str = "", state: str = "", error: str = "") -> Response:
    """Hosted auth returns here (EMAIL_CALLBACK_URL pointed at the web app); the API exchanges
    the code, the single-use state ties it to the customer who asked."""
    page = Page(request)
    page.require_login()
    try:
        await page.anon(
            "GET",
            "/api/v1/email/callback",
            params={"code": code, "state": state, "error": error or None},
        )
        page.session.say("Mailbox connected: your mail is on its way in.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/mail")


@router.post("/mail/disconnect")
async def disconnect(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    await page.form()
    try:
        r = await page.call("DELETE", "/api/v1/email/mailbox")
        page.session.say(f"Mailbox disconnected; {r['messages_deleted']} messages deleted here.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/mail")


@router.get("/mail/{message_id}")
async def message(request: Request, message_id: str) -> Response:
    page = Page(request)
    page.require_login()
    mid = _message_id(message_id)
    m, tips = await page.gather(
        page.call("GET", f"/api/v1/email/messages/{mid}"),
        page.optional(page.call("GET", f"/api/v1/email/messages/{mid}/suggestions")),
    )
    if m["unread"]:
        await page.optional(
            page.call("PATCH", f"/api/v1/email/messages/{mid}", json={"unread": False})
        )
    return page.render("mail/message.html", m=m, tips=tips, title=m["subject"] or "Message")


@router.post("/mail/{message_id}/reply")
async def reply(request: Request, message_id: str) -> Response:
    page = Page(request)
    page.require_login()
    mid = _message_id(message_id)
    form = await page.form()
    body = form.get("body", "").strip()
    if not body:
        page.session.say("Write a reply first.", "error")
        return page.redirect(f"/mail/{mid}")
    try:
        await page.call("POST", f"/api/v1/email/messages/{mid}/reply", json={"body": body})
        page.session.say("Reply sent.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect(f"/mail/{mid}")


@router.post("/mail/{message_id}/archive")
async def archive(request: Request, message_id: str) -> Response:
    page = Page(request)
    page.require_login()
    mid = _message_id(message_id)
    await page.form()
    try:
        await page.call("PATCH", f"/api/v1/email/messages/{mid}", json={"archived": True})
        page.session.say("Archived.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/mail")
