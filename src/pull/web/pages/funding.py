"""Money in and out: link a bank (sandbox Link), deposit, withdraw, and their statuses."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pull.web.client import ApiError
from pull.web.web import Page

router = APIRouter(include_in_schema=False)

DONE = {"settled", "failed", "returned", "completed", "rejected"}


def to_cents(text: str) -> int | None:
    """'12.34' or '$1,000' → cents; None when it is not an amount."""
    try:
        value = Decimal(text.replace("$", "").replace(",", "").strip())
    except InvalidOperation:
        return None
    if value <= 0 or value.as_tuple().exponent < -2:  # type: ignore[operator]
        return None
    return int(value * 100)


async def _history(page: Page) -> dict[str, Any]:
    deposits, withdrawals = (
        r["items"]
        for r in await page.gather(
            page.call("GET", "/api/v1/funding/deposits", params={"limit": 10}),
            page.call("GET", "/api/v1/funding/withdrawals", params={"limit": 10}),
        )
    )
    pending = any(x["status"] not in DONE for x in deposits + withdrawals)
    return {"deposits": deposits, "withdrawals": withdrawals, "pending": pending}


@router.get("/funds")
async def funds(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    balance, banks, transfers = await page.gather(
        page.call("GET", "/api/v1/balance"),
        page.call("GET", "/api/v1/funding/bank-accounts"),
        _history(page),
    )
    return page.render(
        "funds/index.html", balance=balance, banks=banks["items"], title="Funds", **transfers
    )


@router.get("/funds/history")
async def history(request: Request) -> Response:
    """The transfers table alone (htmx polls it while a transfer is moving)."""
    page = Page(request)
    page.require_login()
    balance, transfers = await page.gather(page.call("GET", "/api/v1/balance"), _history(page))
    return page.render("funds/_history.html", balance=balance, **transfers)


@router.get("/funds/link")
async def link_form(request: Request) -> Response:
    """Step 1 of sandbox Link: the bank's sign-in (the sandbox's test credentials)."""
    page = Page(request)
    page.require_login()
    return page.render("funds/link.html", step="credentials", title="Link a bank")


@router.post("/funds/link")
async def link_credentials(request: Request) -> Response:
    """Step 2: the accounts Link's metadata lists; the customer picks one."""
    page = Page(request)
    page.require_login()
    form = await page.form()
    body = {"username": form.get("username", ""), "password": form.get("password", "")}
    try:
        link = await page.call("POST", "/api/v1/funding/sandbox/public-token", json=body)
    except ApiError as exc:
        return page.render(
            "funds/link.html",
            status_code=400,
            step="credentials",
            error=exc.human,
            title="Link a bank",
        )
    return page.render("funds/link.html", step="accounts", link=link, title="Link a bank")


@router.post("/funds/link/account")
async def link_account(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    body = {"public_token": form.get("public_token", ""), "account_id": form.get("account_id", "")}
    try:
        bank = await page.call("POST", "/api/v1/funding/bank-accounts", json=body)
    except ApiError as exc:
        page.session.say(exc.human, "error")
        return page.redirect("/funds/link")
    page.session.say(f"Linked {bank['name']} ••{bank.get('mask') or ''}.")
    return page.redirect("/funds")


@router.post("/funds/deposit")
async def deposit(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    cents = to_cents(form.get("amount", ""))
    if cents is None:
        page.session.say("Enter an amount in dollars, like 100 or 25.50.", "error")
        return page.redirect("/funds")
    body = {"amount": cents, "bank_account_id": form.get("bank_account_id", "")}
    try:
        await page.call("POST", "/api/v1/funding/deposits", json=body, idempotent=True)
        page.session.say("Deposit started. It shows here as it moves.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/funds")


@router.post("/funds/withdraw")
async def withdraw(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    cents = to_cents(form.get("amount", ""))
    if cents is None:
        page.session.say("Enter an amount in dollars, like 50 or 12.75.", "error")
        return page.redirect("/funds")
    body = {
        "amount": cents,
        "bank_account_id": form.get("bank_account_id", ""),
        "speed": form.get("speed", "standard"),
    }
    try:
        w = await page.call("POST", "/api/v1/funding/withdrawals", json=body, idempotent=True)
        page.session.say(
            f"Withdrawal started: {_dollars(w['net_amount'])} to your bank after a "
            f"{_dollars(w['fee'])} fee."
        )
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/funds")


def _dollars(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"
