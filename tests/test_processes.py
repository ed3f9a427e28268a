"""The real processes: start-up checks, `pull dev` lifecycle, graceful shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from pull import devstack
from tests.conftest import REPO, Services, start_api_process, stop_process, wait_http

PULL = [sys.executable, "-m", "pull.cli"]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "TEMPORAL_", "JWT_"))
    }
    env.pop("INTERNAL_API_KEY", None)
    env.pop("FIELD_ENCRYPTION_KEYS", None)
    for name in (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_VERIFY_SERVICE_SID",
        "MATRIX_HOMESERVER_URL",
        "MATRIX_REGISTRATION_SHARED_SECRET",
    ):
        env.pop(name, None)
    env.update(extra)
    return env


# Deployed-looking secrets that are not the development defaults.
_REAL_SECRETS = {
    "INTERNAL_API_KEY": "k",
    "FIELD_ENCRYPTION_KEYS": "cHJvZC1maWVsZC1rZXktZm9yLXRlc3RzLTAxMjM0NTY=",
    "PERSONA_WEBHOOK_SECRET": "whsec-persona",
    "CHECKR_WEBHOOK_SECRET": "whsec-checkr",
    "PARALLEL_MARKETS_WEBHOOK_SECRET": "whsec-pm",
    # required, no default
    "TWILIO_ACCOUNT_SID": "AC0123",
    "TWILIO_AUTH_TOKEN": "twilio-token",
    "TWILIO_VERIFY_SERVICE_SID": "VA0123",
    "MATRIX_HOMESERVER_URL": "https://matrix.example.com",
    "MATRIX_REGISTRATION_SHARED_SECRET": "matrix-shared-secret",
}


@pytest.mark.parametrize("command", ["api", "worker", "migrate"])
def test_production_refuses_to_start_without_required_settings(command: str) -> None:
    env = _clean_env(
        ENVIRONMENT="production",
        DATABASE_URL="postgresql+asyncpg://u@db/pull",
        REDIS_URL="redis://cache:6379/0",
        TEMPORAL_ADDRESS="temporal:7233",
        **_REAL_SECRETS,
    )
    r = subprocess.run([*PULL, command], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [
        "FATAL: Missing required environment variables: JWT_SECRET"
    ]


def test_fatal_line_names_every_missing_setting() -> None:
    r = subprocess.run(
        [*PULL, "api"],
        env=_clean_env(ENVIRONMENT="staging"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "FATAL: Missing required environment variables: JWT_SECRET, DATABASE_URL, REDIS_URL, "
        "TEMPORAL_ADDRESS, INTERNAL_API_KEY, FIELD_ENCRYPTION_KEYS, TWILIO_ACCOUNT_SID, "
        "TWILIO_AUTH_TOKEN, TWILIO_VERIFY_SERVICE_SID, MATRIX_HOMESERVER_URL, "
        "MATRIX_REGISTRATION_SHARED_SECRET; Development default secrets "
        "must be replaced: PERSONA_WEBHOOK_SECRET, CHECKR_WEBHOOK_SECRET, "
        "PARALLEL_MARKETS_WEBHOOK_SECRET"
    )


@pytest.mark.parametrize(
    "command", [["api"], ["worker"], ["migrate"], ["users", "grant-admin", "a@b.example"]]
)
def test_deployed_process_refuses_development_default_secrets(command: list[str]) -> None:
    """Every secret set, but some still to the values published in this repository."""
    from pull.config import DEV_FIELD_KEY, DEV_INTERNAL_KEY, DEV_JWT_SECRET

    env = _clean_env(
        ENVIRONMENT="staging",
        DATABASE_URL="postgresql+asyncpg://u@db/pull",
        REDIS_URL="redis://cache:6379/0",
        TEMPORAL_ADDRESS="temporal:7233",
        JWT_SECRET=DEV_JWT_SECRET,
        INTERNAL_API_KEY=DEV_INTERNAL_KEY,
        # The development key anywhere in the rotation list counts.
        FIELD_ENCRYPTION_KEYS=f"{_REAL_SECRETS['FIELD_ENCRYPTION_KEYS']},{DEV_FIELD_KEY}",
        PERSONA_WEBHOOK_SECRET="whsec-persona",
        PARALLEL_MARKETS_WEBHOOK_SECRET="whsec-pm",
        TWILIO_ACCOUNT_SID=_REAL_SECRETS["TWILIO_ACCOUNT_SID"],
        TWILIO_AUTH_TOKEN=_REAL_SECRETS["TWILIO_AUTH_TOKEN"],
        TWILIO_VERIFY_SERVICE_SID=_REAL_SECRETS["TWILIO_VERIFY_SERVICE_SID"],
        MATRIX_HOMESERVER_URL=_REAL_SECRETS["MATRIX_HOMESERVER_URL"],
        MATRIX_REGISTRATION_SHARED_SECRET=_REAL_SECRETS["MATRIX_REGISTRATION_SHARED_SECRET"],
    )
    env.pop("CHECKR_WEBHOOK_SECRET", None)
    r = subprocess.run([*PULL, *command], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "FATAL: Development default secrets must be replaced: JWT_SECRET, "
        "FIELD_ENCRYPTION_KEYS, INTERNAL_API_KEY, CHECKR_WEBHOOK_SECRET"
    ]


def test_fatal_line_names_missing_settings_and_default_secrets_together() -> None:
    env = _clean_env(
        ENVIRONMENT="production",
        DATABASE_URL="postgresql+asyncpg://u@db/pull",
        TEMPORAL_ADDRESS="temporal:7233",
        JWT_SECRET="x" * 40,
        **_REAL_SECRETS,
    )
    env["PERSONA_WEBHOOK_SECRET"] = "dev-persona-webhook-secret"
    r = subprocess.run([*PULL, "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "FATAL: Missing required environment variables: REDIS_URL; "
        "Development default secrets must be replaced: PERSONA_WEBHOOK_SECRET"
    ]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _start_dev(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen[str]:
    env = _clean_env(
        PULL_DATA_DIR=str(data_dir),
        PORT=str(ports["api"]),
        HOST="127.0.0.1",
        METRICS_PORT=str(ports["metrics"]),
        PULL_DEV_POSTGRES_PORT=str(ports["pg"]),
        PULL_DEV_REDIS_PORT=str(ports["redis"]),
        PULL_DEV_TEMPORAL_PORT=str(ports["temporal"]),
        PULL_DEV_TEMPORAL_UI_PORT=str(ports["ui"]),
        WEB_PORT=str(ports["web"]),
        LOG_LEVEL="warning",
    )
    return subprocess.Popen(
        [*PULL, "dev"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_running(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("Press Ctrl-C"):
            return "".join(seen)
    raise AssertionError("pull dev did not come up:\n" + "".join(seen))


def test_pull_dev_lifecycle(tmp_path: Path) -> None:
    """Up with ready=200; a second instance refuses; Ctrl-C leaves no orphan; data survives."""
    data_dir = tmp_path / "data"
    kinds = ("api", "metrics", "pg", "redis", "temporal", "ui", "web")
    ports = {k: devstack.free_port() for k in kinds}
    first = _start_dev(data_dir, ports)
    try:
        banner = _wait_running(first)
        api = f"http://127.0.0.1:{ports['api']}"
        assert f"API           {api}" in banner
        assert f"{api}/docs" in banner
        assert f"http://127.0.0.1:{ports['ui']}" in banner
        assert httpx.get(f"{api}/health/ready", timeout=10).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ports['metrics']}/metrics").status_code == 200
        web = f"http://127.0.0.1:{ports['web']}"
        assert f"Web app       {web}" in banner
        assert httpx.get(f"{web}/health/ready", timeout=10).json() == {"status": "ready"}

        # the same data directory cannot be used twice
        second = _start_dev(data_dir, {k: devstack.free_port() for k in ports})
        out, _ = second.communicate(timeout=60)
        assert second.returncode != 0
        assert "already running" in out

        # leave a mark in PostgreSQL and Redis
        devstack.psql(
            ports["pg"],
            "CREATE TABLE dev_marker (v text); INSERT INTO dev_marker VALUES ('kept')",
            database="pull",
        )
        import redis

        r = redis.Redis(port=ports["redis"])
        r.set("dev-marker", "kept")
        r.close()

        children = _descendants(first.pid)
        names = {p.name() for p in children}
        assert {"postgres", "temporal"} <= names, names
        assert len(children) >= 5
        os.killpg(first.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        first.wait(60)
        assert first.returncode == 0
        time.sleep(1)
        alive = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert alive == [], [p.cmdline() for p in alive]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)

    # restart on the same data directory (stopped with SIGTERM this time)
    again = _start_dev(data_dir, ports)
    try:
        _wait_running(again)
        assert devstack.psql(ports["pg"], "SELECT v FROM dev_marker", database="pull") == "kept"
        import redis

        r = redis.Redis(port=ports["redis"])
        assert r.get("dev-marker") == b"kept"
        r.close()
        children = _descendants(again.pid)
        again.send_signal(signal.SIGTERM)
        again.wait(60)
        assert again.returncode == 0
        time.sleep(1)
        assert [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    finally:
        if again.poll() is None:
            os.killpg(again.pid, signal.SIGKILL)


def test_api_process_serves_and_finishes_in_flight_requests(services: Services) -> None:
    """SIGTERM while a request is running: it still gets its whole response."""
    # A Temporal address that accepts TCP but never speaks: readiness waits for its timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    proc, url = start_api_process(
        services, TEMPORAL_ADDRESS=f"127.0.0.1:{port}", HEALTH_TIMEOUT_SECONDS="3"
    )
    try:
        assert httpx.get(f"{url}/health").json()["status"] == "healthy"
        result: dict[str, object] = {}

        def slow_request() -> None:
            started = time.monotonic()
            r = httpx.get(f"{url}/health/ready", timeout=30)
            result["status"] = r.status_code
            result["body"] = r.json()
            result["elapsed"] = time.monotonic() - started

        t = threading.Thread(target=slow_request)
        t.start()
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGTERM)
        t.join(30)
        assert result["status"] == 503
        assert result["body"]["failed"] == ["temporal"]  # type: ignore[index]
        assert result["elapsed"] >= 2.5  # type: ignore[operator]
        proc.wait(30)
        # uvicorn re-raises the captured SIGTERM after its graceful shutdown completes
        assert proc.returncode in (0, -signal.SIGTERM)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/health", timeout=2)
    finally:
        stop_process(proc)
        silent.close()


def test_api_process_runs_several_workers(services: Services) -> None:
    proc, url = start_api_process(services, API_WORKERS="2", LOG_LEVEL="info")
    try:
        wait_http(f"{url}/health")
        for _ in range(10):
            assert httpx.get(f"{url}/api/v1/status").status_code == 200
        text = httpx.get(f"{url}/metrics").text
        assert 'http_requests_total{method="GET",route="/api/v1/status",status="200"} 10.0' in text
        workers = [
            p for p in psutil.Process(proc.pid).children(recursive=True) if "python" in p.name()
        ]
        assert len(workers) >= 2
        # every worker process writes one JSON line per request
        port = url.rsplit(":", 1)[1]
        lines = (services.data_dir / f"api-{port}.log").read_text().splitlines()
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        served = [e for e in entries if e.get("route") == "/api/v1/status"]
        assert len(served) == 10
        assert {e["status"] for e in served} == {200}
        assert all(e["service"] == "pull-api" for e in served)
    finally:
        stop_process(proc)
