"""The pages of the modules that landed after the first web pages: portfolio, notifications
(price alerts, preferences), mail (connect through hosted auth, inbox, search, suggested
replies, reply) and messages (market rooms and direct messages through a real Synapse), plus
the live stream relay. Clicked in Chromium at 390 px and audited with axe-core."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.web.conftest import WebStack
from tests.web.ui import audit, shot, sign_up

TICKER = "KXFED-27JAN-CUT"  # a market of `pull seed`


def test_portfolio_page(page: Any) -> None:
    sign_up(page)
    page.goto("/portfolio")
    expect(page.get_by_role("heading", name="Portfolio", exact=True)).to_be_visible()
    expect(page.locator("#portfolio-value")).to_have_text("$0.00")
    expect(page.get_by_role("heading", name="Monthly statements")).to_be_visible()
    page.get_by_role("link", name="1W").click()
    expect(page.get_by_role("link", name="1W")).to_have_attribute("aria-current", "true")
    audit(page)
    shot(page, "portfolio")


def test_notifications_alert_and_preferences(page: Any) -> None:
    sign_up(page)
    page.goto("/notifications")
    expect(page.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    page.get_by_label("Market ticker").fill(TICKER)
    page.get_by_label("When it trades").select_option("below")
    page.get_by_label("Price (¢)").fill("5")
    page.get_by_role("button", name="Set alert").click()
    expect(page.get_by_text(f"We will tell you when {TICKER} trades below 5¢.")).to_be_visible()
    expect(page.get_by_text(f"{TICKER} below 5¢ · active")).to_be_visible()
    # preferences: switch one channel off, save, and it stays off on reload
    box = page.get_by_label("fill by email", exact=True)
    if box.is_checked():
        box.uncheck()
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Notification settings saved.")).to_be_visible()
    page.reload()
    expect(page.get_by_label("fill by email", exact=True)).not_to_be_checked()
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Paris")
    page.get_by_label("Time zone").fill("Not/AZone")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".msg.error")).to_be_visible()  # the API's INVALID_TIME_ZONE, in words
    audit(page)
    shot(page, "notifications")
    page.get_by_role("button", name=re.compile(f"Cancel alert {TICKER}")).click()
    expect(page.get_by_text("Alert canceled.")).to_be_visible()


def test_mail_connect_triage_search_and_reply(page: Any) -> None:
    sign_up(page)
    page.goto("/mail")
    expect(page.get_by_role("heading", name="Connect your mailbox")).to_be_visible()
    audit(page)
    page.get_by_role("button", name="Connect mailbox").click()
    audit(page)
    page.get_by_role("link", name="Continue to your mail provider").click()
    # the sandbox's hosted auth redirects to /mail/callback, which the API completes
    expect(page.get_by_text("Mailbox connected")).to_be_visible()
    deadline = time.monotonic() + 180
    while "live" not in page.locator("#mailbox").inner_text() and time.monotonic() < deadline:
        time.sleep(1)  # the EmailSyncWorkflow backfills in pages, then goes live
        page.reload()
    expect(page.locator("#mailbox")).to_contain_text("live")
    assert page.locator("#mail-list li").count() >= 10
    page.get_by_role("link", name="Trading alerts", exact=True).click()
    expect(page.locator("#mail-list li").first).to_contain_text("Trading alerts")
    audit(page)
    shot(page, "mail")
    page.get_by_label("Search your mail").fill("invoice payment")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#mail-list li").first).to_be_visible()
    page.locator("#mail-list li a").first.click()
    expect(page.locator("#mail-body")).not_to_be_empty()
    audit(page)
    page.get_by_label("Your reply").fill("Thanks, noted.")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_text("Reply sent.")).to_be_visible()
    shot(page, "mail-message")


def test_messages_market_room_and_direct_message(browser: Any, web_stack: WebStack) -> None:
    ctx_a = browser.new_context(viewport={"width": 390, "height": 844}, base_url=web_stack.web)
    ctx_b = browser.new_context(viewport={"width": 390, "height": 844}, base_url=web_stack.web)
    a, b = ctx_a.new_page(), ctx_b.new_page()
    try:
        sign_up(a)
        sign_up(b)
        b.goto("/messages")
        assert b.locator("#my-user-id").count() == 1, b.locator("main").inner_text()
        b_id = b.locator("#my-user-id").inner_text().strip()
        assert re.fullmatch(r"[0-9a-f-]{36}", b_id)
        a.goto("/messages")
        a.get_by_label("Market ticker").fill(TICKER)
        a.get_by_role("button", name="Join").click()
        a.wait_for_load_state()
        assert a.get_by_label("Message").count() == 1, a.locator("main").inner_text()
        a.get_by_label("Message").fill("Anyone trading the January cut?")
        a.get_by_role("button", name="Send").click()
        a.wait_for_url(re.compile(r"/messages/[0-9a-f-]{36}"))
        assert a.locator(".msg.error").count() == 0, a.locator(".msg.error").inner_text()
        expect(a.locator("#conversation")).to_contain_text("Anyone trading the January cut?")
        audit(a)
        shot(a, "messages-room")
        # a direct message, read by the other customer in their own browser
        a.goto("/messages")
        a.get_by_label("Their PULL id").fill(b_id)
        a.get_by_role("button", name="Start a conversation").click()
        a.wait_for_load_state()
        assert a.get_by_label("Message").count() == 1, a.locator("main").inner_text()
        a.get_by_label("Message").fill("Hi from the web app")
        a.get_by_role("button", name="Send").click()
        expect(a.locator("#conversation")).to_contain_text("Hi from the web app")
        b.goto("/messages")
        dm = b.locator("nav[aria-label=Rooms] a").filter(has_not_text=TICKER)
        deadline = time.monotonic() + 60
        while dm.count() == 0 and time.monotonic() < deadline:
            time.sleep(1)
            b.reload()
        assert dm.count() >= 1
        found = False
        for i in range(dm.count()):
            b.goto("/messages")
            dm.nth(i).click()
            if "Hi from the web app" in b.locator("#conversation").inner_text():
                found = True
                break
        assert found, "the direct message did not reach the other customer"
        audit(b)
    finally:
        ctx_a.close()
        ctx_b.close()


def test_stream_relay_needs_a_session_and_carries_the_book(page: Any, web_stack: WebStack) -> None:
    """`/stream` is same-origin Server-Sent Events for the page script: refused without a
    session, and with one it carries the API's stream (hello, then the market's book)."""
    r = httpx.get(f"{web_stack.web}/stream", timeout=10)
    assert r.status_code == 401
    sign_up(page)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    seen: list[str] = []
    with httpx.Client(base_url=web_stack.web, cookies=cookies, timeout=20) as c:
        assert c.get("/stream", params={"markets": "A B"}).status_code == 400
        with c.stream("GET", "/stream", params={"markets": TICKER}) as s:
            assert s.status_code == 200
            assert s.headers["content-type"].startswith("text/event-stream")
            for line in s.iter_lines():
                if line.startswith("event: "):
                    seen.append(line.removeprefix("event: "))
                if "book" in seen:
                    break
    assert seen[0] == "hello" and "book" in seen, seen
