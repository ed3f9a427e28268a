"""`pull smoke` (pull.ops.smoke.run): against a real `pull api`, against one whose Redis is down,
and its reporting rules on canned responses."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import pytest

from pull import devstack
from pull.ops import smoke
from tests.conftest import REPO, start_api_process, stop_process


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pull.cli", "smoke", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_smoke_passes_against_a_running_api(api_server: str) -> None:
    from pull.config import DEV_INTERNAL_KEY

    proc = run_cli("--base-url", api_server, "--internal-key", DEV_INTERNAL_KEY)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in (
        "health",
        "ready",
        "live",
        "detailed",
        "docs",
        "openapi",
        "metrics",
        "auth-check",
        "register",
        "login",
        "auth-session",
        "stream",
    ):
        assert f"[PASS] {name}" in lines
    assert lines[-1] == "SMOKE PASSED: all 12 checks passed"


def test_smoke_fails_naming_ready_when_redis_is_down(services: Any) -> None:
    closed = devstack.free_port()  # nothing listens there
    proc, url = start_api_process(services, REDIS_URL=f"redis://127.0.0.1:{closed}/0")
    try:
        assert httpx.get(f"{url}/health/ready", timeout=10).status_code == 503
        out = run_cli("--base-url", url, "--no-register")
    finally:
        stop_process(proc)
    assert out.returncode == 1, out.stdout
    lines = out.stdout.strip().splitlines()
    assert any(line.startswith("[FAIL] ready: expected HTTP 200, got 503") for line in lines)
    assert "[PASS] live" in lines
    assert lines[-1].startswith("SMOKE FAILED")
    assert "ready" in lines[-1].split(":", 1)[1].split(", ")[0]


def test_smoke_reports_an_unreachable_api() -> None:
    port = devstack.free_port()
    code = smoke.run(f"http://127.0.0.1:{port}", None, register=False, timeout=2)
    assert code == 1


# --- reporting rules, on canned responses (no network) -------------------------------------------


def healthy_app(overrides: dict[str, httpx.Response] | None = None) -> httpx.MockTransport:
    users: dict[str, str] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if overrides and path in overrides:
            return overrides[path]
        if path == "/health":
            return httpx.Response(200, json={"status": "healthy"})
        if path in ("/health/ready", "/health/live", "/docs"):
            return httpx.Response(200, json={"status": "ok"})
        if path == "/health/detailed":
            if request.headers.get("X-Internal-Key") == "k":
                return httpx.Response(200, json={"status": "healthy", "checks": {"db": "pass"}})
            return httpx.Response(200, json={"status": "healthy"})
        if path == "/openapi.json":
            return httpx.Response(200, json={"openapi": "3.1.0", "paths": {"/health": {}}})
        if path == "/metrics":
            return httpx.Response(200, text="# TYPE http_requests_total counter\n")
        if path == "/api/auth/register":
            body = httpx.Response(200, content=request.content).json()
            users[body["email"]] = body["password"]
            return httpx.Response(201, json={"id": "u1"})
        if path == "/api/auth/login":
            body = httpx.Response(200, content=request.content).json()
            if users.get(body["email"]) == body["password"]:
                return httpx.Response(200, json={"tokens": {"access_token": "tok"}})
            return httpx.Response(401, json={"error": {"code": "INVALID_CREDENTIALS"}})
        if path == "/api/auth/check":
            if request.headers.get("Authorization") == "Bearer tok":
                return httpx.Response(200, json={"authenticated": True})
            return httpx.Response(401, json={"error": {"code": "UNAUTHENTICATED"}})
        return httpx.Response(404)

    return httpx.MockTransport(handler)


def test_all_checks_pass_on_a_healthy_api(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.run("http://api", "k", transport=healthy_app()) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "SMOKE PASSED: all 11 checks passed"
    assert "[PASS] auth-session" in out


def test_missing_identity_module_is_a_failed_check(capsys: pytest.CaptureFixture[str]) -> None:
    missing = httpx.Response(404, json={"error": {"code": "NOT_FOUND"}})
    transport = healthy_app({"/api/auth/check": missing, "/api/auth/register": missing})
    assert smoke.run("http://api", None, transport=transport) == 1
    out = capsys.readouterr().out.splitlines()
    assert (
        "[FAIL] auth-check: HTTP 404 on /api/auth/check: the identity module is not deployed" in out
    )
    assert "[SKIP] detailed: no --internal-key given" in out
    assert out[-1] == "SMOKE FAILED (2 failed, 6 passed): auth-check, register"


def test_wrong_internal_key_and_unhealthy_status_fail(capsys: pytest.CaptureFixture[str]) -> None:
    transport = healthy_app({"/health": httpx.Response(200, json={"status": "degraded"})})
    assert smoke.run("http://api", "wrong", register=False, transport=transport) == 1
    out = capsys.readouterr().out.splitlines()
    assert '[FAIL] health: expected "status": "healthy", got \'degraded\'' in out
    assert '[FAIL] detailed: response has no "checks"' in out
    assert "[SKIP] register: disabled (--no-register)" in out
    assert out[-1].endswith(": health, detailed")


def test_metrics_without_request_counter_fails(capsys: pytest.CaptureFixture[str]) -> None:
    transport = healthy_app({"/metrics": httpx.Response(200, text="process_cpu_seconds_total 1")})
    assert smoke.run("http://api", None, register=False, transport=transport) == 1
    assert "[FAIL] metrics: http_requests_total is not exported" in capsys.readouterr().out


def test_metrics_can_be_checked_where_they_are_served(capsys: pytest.CaptureFixture[str]) -> None:
    """Behind the Kubernetes ingress /metrics is not routed (404): --metrics-url points at a
    port-forward or the pod instead."""
    inner = healthy_app()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "api" and request.url.path == "/metrics":
            return httpx.Response(404)
        return inner.handle_request(request)

    transport = httpx.MockTransport(handler)
    assert smoke.run("http://api", None, transport=transport) == 1
    assert "[FAIL] metrics: expected HTTP 200, got 404" in capsys.readouterr().out
    url = "http://127.0.0.1:3001/metrics"
    assert smoke.run("http://api", None, transport=transport, metrics_url=url) == 0
