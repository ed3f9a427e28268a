"""Getting started: verify email and phone, identity (KYC), the sandbox message box."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pull.web.client import ApiError
from pull.web.web import Page

router = APIRouter(include_in_schema=False)

TIERS = ("basic", "standard", "enhanced", "accredited")


async def _me(page: Page) -> dict[str, Any]:
    me: dict[str, Any] = await page.call("GET", "/api/auth/me")
    page.session.remember(me)
    return me


@router.get("/account")
async def account(request: Request) -> Response:
    """The checklist from sign-up to the first trade, each step linking to its page."""
    page = Page(request)
    page.require_login()
    me, kyc, banks, balance = await page.gather(
        _me(page),
        page.call("GET", "/api/v1/kyc/status"),
        page.call("GET", "/api/v1/funding/bank-accounts"),
        page.call("GET", "/api/v1/balance"),
    )
    steps = [
        ("Verify your email", me["email_verified"], "/account#verify-email"),
        ("Verify your phone", me["phone_verified"], "/account#verify-phone"),
        ("Verify your identity", kyc["current_tier"] not in ("none", None), "/kyc"),
        ("Link a bank account", bool(banks["items"]), "/funds/link"),
        ("Add money", balance["total"] > 0, "/funds"),
    ]
    return page.render(
        "account/index.html", me=me, kyc=kyc, steps=steps, balance=balance, title="Get started"
    )


@router.post("/account/resend-verification")
async def resend(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    await page.form()
    try:
        await page.anon(
            "POST", "/api/auth/resend-verification", json={"email": page.session.user["email"]}
        )
        page.session.say("A new verification mail is on its way.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/account")


@router.post("/account/phone")
async def phone_start(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    phone = re.sub(r"[\s().-]", "", form.get("phone", ""))
    try:
        await page.call("POST", "/api/auth/phone/start", json={"phone": phone})
        page.session.say(f"We texted a 6-digit code to {phone}.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/account#verify-phone")


@router.post("/account/phone/verify")
async def phone_verify(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    try:
        user = await page.call(
            "POST", "/api/auth/phone/verify", json={"code": form.get("code", "").strip()}
        )
        page.session.remember(user)
        page.session.say("Your phone number is verified.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/account#verify-phone")


@router.get("/kyc")
async def kyc_page(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    me = await _me(page)
    kyc, limits = await page.gather(
        page.call("GET", "/api/v1/kyc/status"), page.call("GET", "/api/v1/kyc/limits")
    )
    return page.render(
        "account/kyc.html", me=me, kyc=kyc, limits=limits, tiers=TIERS, title="Identity", form={}
    )


@router.get("/kyc/status")
async def kyc_status(request: Request) -> Response:
    """The status panel alone, polled by htmx while a check runs."""
    page = Page(request)
    page.require_login()
    kyc = await page.call("GET", "/api/v1/kyc/status")
    return page.render("account/_kyc_status.html", kyc=kyc)


@router.post("/kyc")
async def kyc_start(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    body: dict[str, Any] = {
        "target_tier": form.get("target_tier", "standard"),
        "first_name": form.get("first_name", "").strip(),
        "last_name": form.get("last_name", "").strip(),
        "dob": form.get("dob", ""),
        "phone": re.sub(r"[\s().-]", "", form.get("phone", "")),
        "address": {
            "line1": form.get("line1", "").strip(),
            "city": form.get("city", "").strip(),
            "state": form.get("state", "").strip(),
            "postal_code": form.get("postal_code", "").strip(),
            "country": form.get("country", "US").strip() or "US",
        },
    }
    if form.get("line2"):
        body["address"]["line2"] = form["line2"].strip()
    if form.get("ssn_last4"):
        body["ssn_last4"] = form["ssn_last4"].strip()
    try:
        await page.call("POST", "/api/v1/kyc/start", json=body)
    except ApiError as exc:
        me = await _me(page)
        kyc, limits = await page.gather(
            page.call("GET", "/api/v1/kyc/status"), page.call("GET", "/api/v1/kyc/limits")
        )
        return page.render(
            "account/kyc.html",
            status_code=400,
            me=me,
            kyc=kyc,
            limits=limits,
            tiers=TIERS,
            title="Identity",
            error=exc.human,
            form=form,
        )
    page.session.say("Thanks. We are checking your details; this usually takes seconds.")
    return page.redirect("/kyc")


@router.post("/kyc/retry")
async def kyc_retry(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    await page.form()
    try:
        await page.call("POST", "/api/v1/kyc/retry")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/kyc")


def _local(found: re.Match[str] | None) -> str | None:
    """A link to one of this app's pages, made relative (the mail names APP_URL's host)."""
    if not found:
        return None
    parts = urlsplit(found.group(0))
    if parts.path in ("/verify-email", "/reset-password"):
        return f"{parts.path}?{parts.query}"
    return None


@router.get("/inbox/sandbox")
async def sandbox_messages(request: Request) -> Response:
    """Development and staging sandboxes: the mail and texts PULL sent, with their links."""
    page = Page(request)
    page.require_login()
    try:
        box = await page.call("GET", "/api/v1/sandbox/messages", params={"limit": 50})
    except ApiError as exc:
        if exc.status != 404:
            raise
        box = None
    messages = []
    for m in (box or {}).get("items", []):
        link = _local(re.search(r"https?://\S+", m["body"]))
        code = re.search(r"\b(\d{6})\b", m["body"]) if m["channel"] == "sms" else None
        messages.append({**m, "link": link, "code": code.group(1) if code else None})
    return page.render(
        "account/sandbox.html", messages=messages, available=box is not None, title="Message box"
    )
