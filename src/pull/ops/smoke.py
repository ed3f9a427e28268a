"""Post-deployment verification (the runbook's checklist), run as `pull smoke`.

Every check prints one line, ``[PASS] name`` or ``[FAIL] name: reason`` (``[SKIP] name: reason``
for a check that could not apply). The last line names the failed checks, and `run` returns 1 if
any failed, else 0, so a deploy pipeline can gate on it.

Checks, in order:
  health        GET  /health            200 and {"status": "healthy"}
  ready         GET  /health/ready      200 (database, Redis and Temporal reachable)
  live          GET  /health/live       200
  detailed      GET  /health/detailed   200 with "checks"; sends X-Internal-Key (only with a key)
  docs          GET  /docs              200
  openapi       GET  /openapi.json      200, an OpenAPI document
  metrics       GET  /metrics           200, exposes http_requests_total (or --metrics-url)
  auth-check    POST /api/auth/check    401 without a token (the route exists)
  register      POST /api/auth/register a throwaway smoke+<uuid>@example.com user (unless disabled)
  login         POST /api/auth/login    200 with an access_token
  auth-session  POST /api/auth/check    200 with that bearer token
  stream        WS   /api/v1/stream     a WebSocket opens with that token and says hello

A 404 on /api/auth/* means the identity module is not deployed, which fails the check.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

SMOKE_PASSWORD = "Sm0ke-Test-Passw0rd!"  # noqa: S105 - throwaway account made by the smoke test


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # "PASS", "FAIL" or "SKIP"
    reason: str = ""

    def line(self) -> str:
        if self.status == "PASS":
            return f"[PASS] {self.name}"
        return f"[{self.status}] {self.name}: {self.reason}"


class CheckFailed(Exception):
    """Raised inside a check with the reason it failed."""


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError as exc:
        raise CheckFailed(f"HTTP {resp.status_code}, body is not JSON") from exc


def _short(resp: httpx.Response) -> str:
    text = resp.text.strip().replace("\n", " ")
    return text[:200] + ("..." if len(text) > 200 else "")


def _expect(resp: httpx.Response, *codes: int, auth: bool = False) -> None:
    if resp.status_code in codes:
        return
    if auth and resp.status_code == 404:
        raise CheckFailed(
            f"HTTP 404 on {resp.request.url.path}: the identity module is not deployed"
        )
    wanted = " or ".join(str(c) for c in codes)
    raise CheckFailed(f"expected HTTP {wanted}, got {resp.status_code}: {_short(resp)}")


def _access_token(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    for holder in (body, body.get("tokens"), body.get("data")):
        if isinstance(holder, dict):
            token = holder.get("access_token")
            if isinstance(token, str) and token:
                return token
    return None


class _Smoke:
    def __init__(
        self,
        client: httpx.Client,
        internal_key: str | None,
        register: bool,
        metrics_url: str | None = None,
        sockets: bool = True,
    ) -> None:
        self.client = client
        self.sockets = sockets  # False under a test transport: no real socket to open
        # Behind the Kubernetes ingress /metrics is not public: check it where it is served.
        self.metrics_url = metrics_url or "/metrics"
        self.internal_key = internal_key
        self.register = register
        self.results: list[CheckResult] = []
        self.email = f"smoke+{uuid.uuid4().hex}@example.com"
        self.token: str | None = None

    def check(self, name: str, fn: Callable[[], None]) -> bool:
        try:
            fn()
        except CheckFailed as exc:
            result = CheckResult(name, "FAIL", str(exc))
        except httpx.HTTPError as exc:
            result = CheckResult(name, "FAIL", f"{type(exc).__name__}: {exc}")
        else:
            result = CheckResult(name, "PASS")
        self.results.append(result)
        print(result.line(), flush=True)
        return result.status == "PASS"

    def skip(self, name: str, reason: str) -> None:
        result = CheckResult(name, "SKIP", reason)
        self.results.append(result)
        print(result.line(), flush=True)

    # -- the checks ------------------------------------------------------------------------

    def health(self) -> None:
        resp = self.client.get("/health")
        _expect(resp, 200)
        body = _json(resp)
        status = body.get("status") if isinstance(body, dict) else None
        if status != "healthy":
            raise CheckFailed(f'expected "status": "healthy", got {status!r}')

    def ready(self) -> None:
        _expect(self.client.get("/health/ready"), 200)

    def live(self) -> None:
        _expect(self.client.get("/health/live"), 200)

    def detailed(self) -> None:
        resp = self.client.get(
            "/health/detailed", headers={"X-Internal-Key": self.internal_key or ""}
        )
        _expect(resp, 200)
        body = _json(resp)
        if not isinstance(body, dict) or not body.get("checks"):
            raise CheckFailed('response has no "checks"')

    def docs(self) -> None:
        _expect(self.client.get("/docs"), 200)

    def openapi(self) -> None:
        resp = self.client.get("/openapi.json")
        _expect(resp, 200)
        body = _json(resp)
        if not isinstance(body, dict) or "openapi" not in body or not body.get("paths"):
            raise CheckFailed('not an OpenAPI document (no "openapi"/"paths")')

    def metrics(self) -> None:
        # Cloud Run serves /metrics publicly, guarded by METRICS_TOKEN (docs/runbook.md).
        token = os.environ.get("METRICS_TOKEN", "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = self.client.get(self.metrics_url, headers=headers)
        _expect(resp, 200)
        if "http_requests_total" not in resp.text:
            raise CheckFailed("http_requests_total is not exported")

    def auth_check(self) -> None:
        resp = self.client.post("/api/auth/check", json={})
        _expect(resp, 401, auth=True)

    def do_register(self) -> None:
        resp = self.client.post(
            "/api/auth/register", json={"email": self.email, "password": SMOKE_PASSWORD}
        )
        _expect(resp, 200, 201, auth=True)

    def login(self) -> None:
        resp = self.client.post(
            "/api/auth/login", json={"email": self.email, "password": SMOKE_PASSWORD}
        )
        _expect(resp, 200, auth=True)
        token = _access_token(_json(resp))
        if token is None:
            raise CheckFailed("login answered 200 without an access_token")
        self.token = token

    def auth_session(self) -> None:
        resp = self.client.post(
            "/api/auth/check", json={}, headers={"Authorization": f"Bearer {self.token}"}
        )
        _expect(resp, 200, auth=True)

    def stream(self) -> None:
        from websockets.sync.client import connect

        base = str(self.client.base_url).rstrip("/")
        url = base.replace("https://", "wss://").replace("http://", "ws://") + "/api/v1/stream"
        with connect(
            url, additional_headers={"Authorization": f"Bearer {self.token}"}, open_timeout=10
        ) as ws:
            hello = json.loads(ws.recv(timeout=10))
        if hello.get("type") != "hello":
            raise CheckFailed(f"the stream's first message was {hello.get('type')!r}, not hello")

    def run_all(self) -> list[CheckResult]:
        self.check("health", self.health)
        self.check("ready", self.ready)
        self.check("live", self.live)
        if self.internal_key:
            self.check("detailed", self.detailed)
        else:
            self.skip("detailed", "no --internal-key given")
        self.check("docs", self.docs)
        self.check("openapi", self.openapi)
        self.check("metrics", self.metrics)
        self.check("auth-check", self.auth_check)
        if not self.register:
            self.skip("register", "disabled (--no-register)")
        elif self.check("register", self.do_register) and self.check("login", self.login):
            self.check("auth-session", self.auth_session)
            if self.sockets:
                self.check("stream", self.stream)
            else:
                self.skip("stream", "no socket through a test transport")
        return self.results


def run(
    base_url: str,
    internal_key: str | None,
    register: bool = True,
    *,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
    metrics_url: str | None = None,
) -> int:
    """Run every check against `base_url`; print the checklist; 0 if all passed, else 1."""
    base = base_url.rstrip("/")
    print(f"PULL smoke test against {base}", flush=True)
    with httpx.Client(
        base_url=base,
        timeout=timeout,
        transport=transport,
        follow_redirects=False,
        headers={"User-Agent": "pull-smoke/1"},
    ) as client:
        results = _Smoke(
            client, internal_key, register, metrics_url, sockets=transport is None
        ).run_all()
    failed = [r.name for r in results if r.status == "FAIL"]
    passed = sum(1 for r in results if r.status == "PASS")
    if failed:
        print(f"SMOKE FAILED ({len(failed)} failed, {passed} passed): {', '.join(failed)}")
        return 1
    print(f"SMOKE PASSED: all {passed} checks passed")
    return 0
