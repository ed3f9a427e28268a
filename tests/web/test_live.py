"""The market page follows the live stream: another trader's order shows on the ladder without
a reload, sooner than the ladder's 20 s safety poll (the 3 s poll runs only while the stream is
down)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.web.conftest import WebStack
from tests.web.ui import sign_up

TICKER = "KXBTC-26DEC31-T150000"


def test_the_ladder_follows_the_stream(page: Any, web_stack: WebStack) -> None:
    sign_up(page)
    page.goto(f"/markets/{TICKER}")
    expect(page.locator("[data-live-market]")).to_have_attribute("data-live", "on", timeout=10_000)
    count = 17 + uuid.uuid4().int % 50
    with httpx.Client(base_url=web_stack.api, timeout=30) as api:
        login = api.post(
            "/api/auth/login", json={"email": "demo@pull.dev", "password": "PullDemo-2024"}
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        placed = api.post(
            "/api/v1/orders",
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
            json={
                "ticker": TICKER,
                "side": "yes",
                "action": "buy",
                "count": count,
                "type": "limit",
                "yes_price": 2,
            },
        )
        assert placed.status_code == 201, placed.text
    row = page.locator("#book tr.bid", has_text="2¢")
    expect(row).to_contain_text(str(count), timeout=5_000)
