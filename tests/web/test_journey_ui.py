"""A new customer's whole journey clicked through the web app in Chromium at 390 px:
sign up → verify email (the link in the sandbox message box) → verify phone (the texted code)
→ KYC → link a bank (sandbox Link) → deposit → a quick order → withdraw.

The same path tests/test_journey.py walks over HTTP; here every step is a click or a typed
field, every page on the way passes the axe-core audit, and the figures shown are checked to
the cent (fee rules of docs/exchange.md and docs/money.md).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.ui import audit, shot, sign_up

TICKER = "KXFED-27JAN-CUT"  # demo market: makers quote YES 37 bid / 39 ask
PHONE = f"+1415555{secrets.randbelow(10_000):04d}"  # a number of its own per run


def verify_email(page: Any) -> None:
    page.get_by_role("link", name="message box", exact=True).click()
    audit(page)
    shot(page, "message-box")
    page.get_by_role("link", name="Open the link in this mail").first.click()
    page.get_by_role("button", name="Verify my email address").click()
    expect(page.get_by_text("Your email address is verified.")).to_be_visible()


def verify_phone(page: Any) -> None:
    page.get_by_label("Mobile number, with country code").fill(PHONE)
    page.get_by_role("button", name="Text me a code").click()
    expect(page.get_by_text(f"We texted a 6-digit code to {PHONE}.")).to_be_visible()
    page.goto("/inbox/sandbox")
    code = page.locator(".sms-code").first.inner_text()
    page.goto("/account")
    page.get_by_label("6-digit code").fill(code)
    page.get_by_role("button", name="Verify phone").click()
    expect(page.get_by_text("Your phone number is verified.")).to_be_visible()
    audit(page)
    shot(page, "account")


def pass_kyc(page: Any) -> None:
    page.get_by_role("link", name="Verify your identity").click()
    audit(page)
    page.get_by_label("First name").fill("Grace")
    page.get_by_label("Last name").fill("Hopper")
    page.get_by_label("Date of birth").fill("1986-12-09")
    page.get_by_label("Street address").fill("1 Compiler Lane")
    page.get_by_label("City").fill("Arlington")
    page.get_by_label("State").fill("VA")
    page.get_by_label("ZIP code").fill("22201")
    page.get_by_role("button", name="Submit for verification").click()
    # the status panel polls (htmx) until the sandbox's webhook has been decided by the worker
    expect(page.locator("#kyc-status .tier")).to_have_text("standard", timeout=90_000)
    audit(page)
    shot(page, "kyc")


def link_bank_and_deposit(page: Any) -> None:
    page.goto("/funds")
    page.get_by_role("link", name="Link a bank account").click()
    audit(page)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("group")).to_contain_text("Which")
    audit(page)
    page.get_by_role("button", name="Link account").click()
    expect(page.get_by_text(re.compile(r"Linked .* ••0000"))).to_be_visible()
    page.get_by_label("Amount in dollars").first.fill("100")
    page.get_by_role("button", name="Deposit").click()
    expect(page.get_by_text("Deposit started.")).to_be_visible()
    expect(page.locator("tr.deposit .status").first).to_have_text("settled", timeout=90_000)
    expect(page.locator("#available")).to_have_text("$100.00")
    audit(page)
    shot(page, "funds")


def trade(page: Any) -> None:
    page.get_by_role("link", name="Markets", exact=True).click()
    page.get_by_label("Search markets").fill("Fed")
    page.get_by_role("button", name="Search").click()
    audit(page)
    shot(page, "markets")
    page.locator(f'a[href="/markets/{TICKER}"]').click()
    expect(page.locator("#book tr.ask").first).to_be_visible()
    # a quick buy of 10 YES fills at the 39¢ offer: cost $3.90, fee ceil(0.07·10·.39·.61) = 17¢
    page.get_by_label("Contracts").fill("10")
    expect(page.locator("#est-cost")).to_have_text("$3.90")
    expect(page.locator("#est-fee")).to_have_text("$0.17")
    expect(page.locator("#est-total")).to_have_text("$4.07")
    expect(page.locator("#est-payout")).to_have_text("$10.00")
    audit(page)
    shot(page, "market")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator("#placed .order-status")).to_have_text("executed")
    expect(page.locator("#placed")).to_contain_text("10 of 10 filled, fee $0.17")
    page.goto("/orders")
    expect(page.locator("main table").first).to_contain_text(TICKER)
    audit(page)
    shot(page, "orders")


def withdraw(page: Any) -> None:
    page.goto("/funds")
    page.get_by_label("Amount in dollars").nth(1).fill("50")
    page.get_by_role("button", name="Withdraw").click()
    # standard speed: 0.25 % of $50 is 12.5¢, so the 25¢ minimum applies
    expect(
        page.get_by_text("Withdrawal started: $49.75 to your bank after a $0.25 fee.")
    ).to_be_visible()
    expect(page.locator("tr.withdrawal .status").first).to_have_text("completed", timeout=90_000)
    expect(page.locator("#available")).to_have_text("$45.93")  # 100 - 4.07 - 50


@pytest.mark.timeout(900)  # KYC, deposit and withdrawal each wait on the worker; the box is shared
def test_a_new_customer_clicks_from_sign_up_to_withdrawal(page: Any) -> None:
    sign_up(page)
    verify_email(page)
    verify_phone(page)
    pass_kyc(page)
    link_bank_and_deposit(page)
    trade(page)
    withdraw(page)
