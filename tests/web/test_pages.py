"""Every other page, clicked in Chromium at 390 px and audited with axe-core: rewards,
collectibles, stocks, settings (2FA, API keys, sessions) and the operator pages, reached by an
admin who turns two-factor authentication on in the UI (the API refuses admins without it)."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import expect

from tests.web.conftest import ADMIN_PASSWORD, WebStack
from tests.web.ui import audit, shot, sign_in, sign_up


def test_customer_pages_render_and_pass_the_audit(page: Any) -> None:
    sign_up(page)
    for path, heading in (
        ("/markets", "Markets"),
        ("/orders", "Orders and fills"),
        ("/rewards", "Rewards"),
        ("/collectibles", "Collectibles"),
        ("/stocks", "Stocks and crypto"),
        ("/settings", "Settings"),
        ("/kyc", "Verify your identity"),
    ):
        page.goto(path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        audit(page)
        shot(page, path.strip("/"))
    page.goto("/rewards")
    expect(page.locator("#referral-code")).not_to_be_empty()
    page.get_by_role("button", name="Check in today").click()
    expect(page.get_by_text(re.compile(r"Checked in: a \d+-day streak"))).to_be_visible()


def test_a_collectible_page_shows_its_book_and_offering(page: Any) -> None:
    sign_up(page)
    page.goto("/collectibles")
    link = page.locator("ul.market-list a").first
    if link.count() == 0:  # the seed lists its demo assets; nothing to open otherwise
        expect(page.get_by_text("Nothing listed right now.")).to_be_visible()
        return
    link.click()
    expect(page.get_by_role("heading", name="Order book")).to_be_visible()
    audit(page)
    shot(page, "collectible")


def test_stocks_search_and_quote(page: Any) -> None:
    sign_up(page)
    page.goto("/stocks")
    page.get_by_label("Find a stock or coin").fill("AAPL")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Quote AAPL").click()
    if page.get_by_role(
        "alert"
    ).count():  # the broker was slow on a loaded machine: as a person would, try again
        page.reload()
    expect(page.get_by_role("heading", name="AAPL")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Bid \$[\d.]+ · ask \$[\d.]+"))).to_be_visible()
    audit(page)


def test_settings_add_and_revoke_an_api_key(page: Any) -> None:
    sign_up(page)
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    page.goto("/settings")
    page.get_by_label("Name", exact=True).fill("my bot")
    page.get_by_label("Public key (PEM)").fill(pem)
    page.get_by_role("button", name="Add key").click()
    expect(page.get_by_text("API key added.")).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"Key id for the KALSHI-ACCESS-KEY header: \S+"))
    ).to_be_visible()
    page.get_by_role("button", name="Revoke my bot").click()
    expect(page.get_by_text("API key revoked.")).to_be_visible()
    expect(page.get_by_text("No keys.")).to_be_visible()


def operator(page: Any, stack: WebStack) -> None:
    """The seeded operator signs in, turns 2FA on through Settings, and signs in again with a
    code (the login form's second step)."""
    sign_in(page, stack.admin_email, ADMIN_PASSWORD)
    page.goto("/admin")
    expect(page.get_by_role("alert")).to_contain_text("two-factor authentication")
    page.goto("/settings")
    page.get_by_role("button", name="Set up two-factor authentication").click()
    secret = page.locator("#totp-secret").inner_text()
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("#tfa-state")).to_have_text("On")
    expect(page.locator("#recovery-codes li")).not_to_have_count(0)
    audit(page)
    shot(page, "settings-2fa")
    page.get_by_role("button", name="Sign out", exact=True).click()
    # a code is accepted once: sign in with the next one
    totp = pyotp.TOTP(secret)
    used = totp.now()
    while totp.now() == used:
        time.sleep(1)
    sign_in(page, stack.admin_email, ADMIN_PASSWORD, code=totp.now())


def test_operator_pages_with_two_factor_authentication(page: Any, web_stack: WebStack) -> None:
    if not web_stack.procs:
        return  # deployed: no operator account to use
    operator(page, web_stack)
    page.get_by_role("link", name="Operators").click()
    expect(page.get_by_role("heading", name="Operators")).to_be_visible()
    # the stack runs without ClickHouse (ANALYTICS_INGEST=off): the panels say so, in words
    expect(page.locator("#totals, .msg.warn").first).to_be_visible()
    audit(page)
    shot(page, "admin-dashboard")
    for path, heading in (
        ("/admin/kyc", "KYC reviews"),
        ("/admin/withdrawals", "Withdrawal approvals"),
        ("/admin/rwa", "RWA offerings"),
        ("/admin/markets", "Markets"),
    ):
        page.goto(path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        audit(page)
        shot(page, path.strip("/").replace("/", "-"))
    # market lifecycle: pause a demo market that the journey does not trade, then reopen it
    card = page.locator("li.admin-market", has_not_text="KXFED-27JAN-CUT").first
    ticker = card.locator("strong").first.inner_text()
    card.get_by_role("button", name=f"Pause {ticker}").click()
    expect(page.get_by_text(f"{ticker} paused.")).to_be_visible()
    page.get_by_label("Status").select_option("paused")
    page.get_by_role("button", name="Show").click()
    card = page.locator("li.admin-market", has_text=ticker)
    expect(card.locator(".status")).to_have_text("paused")
    card.get_by_role("button", name=f"Open {ticker}").click()
    expect(page.get_by_text(f"{ticker} opened.")).to_be_visible()


def test_customers_do_not_see_operator_pages(page: Any) -> None:
    sign_up(page)
    expect(page.get_by_role("link", name="Operators")).to_have_count(0)
    page.goto("/admin")
    expect(page.get_by_role("alert")).to_have_text("You are not allowed to do that.")
