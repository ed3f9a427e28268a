"""One stack and one browser for the whole web test session.

Real processes: `pull migrate`d scratch database + `pull seed`, `pull worker`, `pull api` and
`pull web` (the web process knows only the API's URL), then Debian's Chromium driven by
Playwright for Python. Each test gets a fresh browser context (its own cookies). The API runs
with rate limits off: these tests click through the UI, the limits have their own tests.

`PULL_WEB_URL` (and `PULL_WEB_API_URL`) point the smoke set at a deployed web app instead; the
stack is then not started (`pull smoke --web-url` does that).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Services, create_scratch_database, free_port, spawn, stop_process

CHROMIUM = os.environ.get("PULL_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
MOBILE = {"width": 390, "height": 844}
ADMIN_PASSWORD = "Operator-Pass-2026!"


@pytest.fixture(autouse=True)
def _clean_state() -> None:
    """The web stack has a scratch database of its own; nothing to empty between tests (and
    Playwright's event loop in this thread would refuse the parent fixture's asyncio.run)."""


@dataclass
class WebStack:
    web: str
    api: str
    admin_email: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def pull(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "pull.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"process exited with {proc.returncode} before {url}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


@pytest.fixture(scope="session")
def web_stack(request: pytest.FixtureRequest) -> Iterator[WebStack]:
    deployed = os.environ.get("PULL_WEB_URL")
    if deployed:
        yield WebStack(web=deployed.rstrip("/"), api=os.environ.get("PULL_WEB_API_URL", ""))
        return
    services: Services = request.getfixturevalue("services")
    matrix = request.getfixturevalue("matrix")  # the messages pages talk to a real Synapse
    database_url = create_scratch_database(services, "pull_web")
    api_port, web_port, metrics = free_port(), free_port(), free_port()
    api, web = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{web_port}"
    env = services.env(
        DATABASE_URL=database_url,
        REDIS_URL=services.redis_url.rsplit("/", 1)[0] + "/15",
        TEMPORAL_TASK_QUEUE=f"web-{uuid.uuid4().hex[:8]}",
        PORT=str(api_port),
        HOST="127.0.0.1",
        METRICS_PORT=str(metrics),
        APP_URL=web,
        RATE_LIMIT_ENABLED="false",
        KYC_WEBHOOK_BASE_URL=api,
        KYC_SANDBOX_DELAY_SECONDS="0.5",
        PLAID_WEBHOOK_URL=f"{api}/webhooks/plaid",
        PLAID_SANDBOX_POST_SECONDS="0.5",
        PLAID_SANDBOX_SETTLE_SECONDS="0.5",
        WEB_PORT=str(web_port),
        WEB_HOST="127.0.0.1",
        WEB_API_URL=api,
        # a customer's first messaging call provisions their Matrix account (Synapse hashes its
        # password): seconds on a loaded machine, more than the production 10 s budget
        WEB_API_TIMEOUT_SECONDS="60",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_COST="1024",
        # Mail: the sandbox's hosted auth returns to the web app, which hands the code to the API
        EMAIL_CALLBACK_URL=f"{web}/mail/callback",
        EMAIL_WEBHOOK_BASE_URL=api,
        EMAIL_SANDBOX_DELAY_SECONDS="0.3",
        MATRIX_HOMESERVER_URL=matrix.url,
        MATRIX_REGISTRATION_SHARED_SECRET=matrix.shared_secret,
    )
    stack = WebStack(web=web, api=api, env=env)
    stack.pull("seed")
    stack.admin_email = f"operator-{uuid.uuid4().hex[:8]}@example.com"
    stack.pull(
        "users",
        "create",
        "--email",
        stack.admin_email,
        "--password",
        ADMIN_PASSWORD,
        "--admin",
        "--verified",
        "--phone",
        "+14155550199",
    )
    logs = services.data_dir
    try:
        stack.procs.append(spawn(["worker"], env, logs / f"web-worker-{api_port}.log"))
        stack.procs.append(spawn(["api"], env, logs / f"web-api-{api_port}.log"))
        stack.procs.append(spawn(["web"], env, logs / f"web-web-{web_port}.log"))
        _wait(f"http://127.0.0.1:{metrics}/metrics", stack.procs[0])
        _wait(f"{api}/health/ready", stack.procs[1])
        _wait(f"{web}/health", stack.procs[2])
        yield stack
    finally:
        for proc in reversed(stack.procs):
            stop_process(proc)


@pytest.fixture(scope="session")
def browser(web_stack: WebStack) -> Iterator[Any]:
    """Started after the stack: Playwright's sync API runs an event loop in this thread, and
    the stack's set-up (migrations) needs `asyncio.run`."""
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)  # the machine is shared: pages can take seconds
    yield from _browser()


def _browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, web_stack: WebStack) -> Iterator[Any]:
    """A phone-sized page (390 px wide) in a context of its own."""
    context = browser.new_context(viewport=MOBILE, base_url=web_stack.web)
    context.set_default_timeout(20_000)
    p = context.new_page()
    yield p
    context.close()


@pytest.fixture
def wide_page(browser: Any, web_stack: WebStack) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=web_stack.web)
    context.set_default_timeout(20_000)
    p = context.new_page()
    yield p
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failure, keep the page's screenshot and HTML beside the logs (PULL_WEB_FAILURES)."""
    report = yield
    if report.when == "call" and report.failed:
        out = Path(os.environ.get("PULL_WEB_FAILURES") or "/tmp/pull-web-failures")
        for name in ("page", "wide_page"):
            p = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if p is None:
                continue
            out.mkdir(parents=True, exist_ok=True)
            try:
                p.screenshot(path=str(out / f"{item.name}.png"), full_page=True)
                (out / f"{item.name}.html").write_text(p.content())
            except Exception:  # noqa: S110 - best effort, the failure itself is reported
                pass
    return report
