"""Email test helpers: a scratch database with real `pull api` and `pull worker` processes
(the sandbox delivers its signed webhooks to that API), and Nylas-signed webhook senders."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from pull.email.providers import wire
from tests.conftest import Services, create_scratch_database, free_port, spawn, stop_process

SECRET = "email-test-webhook-secret"


@dataclass
class EmailStack:
    url: str
    database_url: str
    logs: list[Path]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"process exited with {proc.returncode} before {url} answered"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def email_stack(services: Services) -> Iterator[EmailStack]:
    database_url = create_scratch_database(services, "pull_email")
    port, metrics = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = services.env(
        DATABASE_URL=database_url,
        REDIS_URL=services.redis_url.rsplit("/", 1)[0] + "/13",
        TEMPORAL_TASK_QUEUE=f"email-{uuid.uuid4().hex[:8]}",
        PORT=str(port),
        HOST="127.0.0.1",
        METRICS_PORT=str(metrics),
        LOG_LEVEL="debug",
        NYLAS_WEBHOOK_SECRET=SECRET,
        EMAIL_WEBHOOK_BASE_URL=url,
        EMAIL_CALLBACK_URL=f"{url}/api/v1/email/callback",
        EMAIL_SANDBOX_DELAY_SECONDS="0.5",
        OUTBOX_POLL_SECONDS="0.2",
    )
    logs = [
        services.data_dir / f"email-worker-{port}.log",
        services.data_dir / f"email-api-{port}.log",
    ]
    stack = EmailStack(url=url, database_url=database_url, logs=logs)
    try:
        stack.procs.append(spawn(["worker"], env, logs[0]))
        stack.procs.append(spawn(["api"], env, logs[1]))
        _wait(f"http://127.0.0.1:{metrics}/metrics", stack.procs[0])
        _wait(f"{url}/health/live", stack.procs[1])
        yield stack
    finally:
        for proc in reversed(stack.procs):
            stop_process(proc)


def register(client: httpx.Client) -> dict[str, str]:
    email = f"mail-{uuid.uuid4().hex[:10]}@example.com"
    r = client.post(
        "/api/auth/register", json={"email": email, "password": "Correct-Horse-9-Battery"}
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def sandbox_grant_id(code: str) -> str:
    """The sandbox derives the grant id from the code (providers/sandbox.py)."""
    return "sbx-" + hashlib.sha256(code.encode()).hexdigest()[:24]


def signed(event: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event, separators=(",", ":")).encode()
    return body, {
        "Content-Type": "application/json",
        wire.SIGNATURE_HEADER: wire.sign(secret, body),
    }


def eventually(fetch: Any, done: Any, timeout: float = 120, every: float = 0.75) -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        assert time.monotonic() < deadline, f"gave up waiting; last seen {str(value)[:2000]}"
        time.sleep(every)
        value = fetch()
    return value
