"""The web app's smoke set (`-m smoke`): what `pull smoke --web-url` checks after a deploy.

Against the session's own stack by default, or a deployed web app with PULL_WEB_URL.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.web.conftest import WebStack
from tests.web.ui import audit, shot, sign_in, sign_up

pytestmark = pytest.mark.smoke


def test_web_process_answers_its_probes_and_metrics(web_stack: WebStack) -> None:
    assert httpx.get(f"{web_stack.web}/health", timeout=10).json() == {"status": "healthy"}
    assert httpx.get(f"{web_stack.web}/health/ready", timeout=10).json()["status"] == "ready"
    home = httpx.get(f"{web_stack.web}/", timeout=10)
    assert home.status_code == 200 and "PULL" in home.text
    assert "default-src 'self'" in home.headers["content-security-policy"]
    assert home.headers["x-frame-options"] == "DENY"
    if not web_stack.procs:
        return  # deployed: /metrics is not behind the public ingress
    metrics = httpx.get(f"{web_stack.web}/metrics", timeout=10).text
    assert 'web_requests_total{method="GET",route="/",status="200"}' in metrics
    assert "web_request_duration_seconds_bucket" in metrics
    # through the ingress (which sets X-Forwarded-For) /metrics is not there
    proxied = httpx.get(f"{web_stack.web}/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 404


def test_the_session_cookie_is_httponly_secure_and_samesite(web_stack: WebStack) -> None:
    r = httpx.get(f"{web_stack.web}/login", timeout=10)
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("pull_session=")
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite=lax", "path=/"} <= flags, cookie


def test_a_form_without_its_csrf_token_is_refused(web_stack: WebStack) -> None:
    with httpx.Client(base_url=web_stack.web, timeout=10) as c:
        c.get("/login")
        r = c.post("/login", data={"email": "a@example.com", "password": "x"})
        assert r.status_code == 403 and "This form has expired" in r.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
        assert token
        # the right token from another session is refused too
        r = httpx.post(
            f"{web_stack.web}/login",
            data={"email": "a@example.com", "password": "x", "csrf_token": token.group(1)},
            timeout=10,
        )
        assert r.status_code == 403


def test_sign_up_sign_out_and_sign_in_again(page: Any) -> None:
    page.goto("/")
    audit(page)
    shot(page, "home")
    page.goto("/signup")
    audit(page)
    shot(page, "signup")
    email = sign_up(page)
    expect(page.get_by_role("heading", name="Get started")).to_be_visible()
    expect(page.get_by_text("Welcome to PULL")).to_be_visible()
    audit(page)
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url(re.compile(r"/login"))
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    audit(page)
    shot(page, "login")
    sign_in(page, email)
    expect(page.get_by_role("heading", name="Markets")).to_be_visible()


def test_a_wrong_password_reads_as_a_sentence(page: Any) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill("nobody-here@example.com")
    page.get_by_label("Password").fill("Not-The-Password-1")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(
        "That email and password do not match an account."
    )
    audit(page)


def test_pages_that_need_a_session_send_you_to_sign_in(page: Any) -> None:
    page.goto("/funds")
    page.wait_for_url(re.compile(r"/login\?next=/funds"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_pull_smoke_runs_this_set_against_a_deployed_web_app(web_stack: WebStack) -> None:
    """What the deploy pipeline runs: the API checks, then this file's browser tests."""
    if not web_stack.procs:
        pytest.skip("already running against a deployed web app")
    import subprocess
    import sys

    args = ["smoke", "--base-url", web_stack.api, "--web-url", web_stack.web]
    done = subprocess.run(
        [sys.executable, "-m", "pull.cli", *args],
        env=web_stack.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[PASS] web-smoke" in done.stdout and "passed" in done.stdout
