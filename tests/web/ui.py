"""Helpers the browser tests share: accessibility audits, layout checks, screenshots."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

import axe_playwright_python

# axe-core as shipped inside the axe-playwright-python package (PyPI), not from a CDN
AXE = Path(axe_playwright_python.__file__).parent / "axe.min.js"
AXE_SOURCE = AXE.read_text()
SHOTS = Path(os.environ.get("PULL_WEB_SCREENSHOTS") or "/tmp/pull-web-screenshots")
PASSWORD = "Browser-Journey-2026!"


def audit(page: Any) -> None:
    """axe-core on the page as it is: no serious or critical violation, and nothing wider than
    the viewport (every page must work at 390 px)."""
    # evaluated through the DevTools protocol: the page's CSP (script-src 'self') stays on
    page.evaluate(AXE_SOURCE)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{page.url}: " + "; ".join(bad)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    assert width <= viewport, f"{page.url}: page is {width}px wide at a {viewport}px viewport"


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_up(page: Any) -> str:
    email = f"web-{uuid.uuid4().hex[:10]}@example.com"
    page.goto("/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r"/account"))
    return email


def sign_in(page: Any, email: str, password: str = PASSWORD, code: str | None = None) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    if code is not None:
        page.get_by_label("Authenticator code").fill(code)
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/markets"))
