"""The API over HTTP: one pooled aiohttp session per process, errors turned into sentences.

aiohttp rather than httpx here: httpcore's pool walks (and polls) every pooled connection on
each request, so with 50 users' pages in flight about 70% of this process's CPU went to pool
bookkeeping (py-spy, 2026-12-02; httpx issue 3215). aiohttp's connector hands out a free
connection in constant time.
"""

from __future__ import annotations

import json as jsonlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client import Histogram

API_LATENCY = Histogram(
    "web_api_request_duration_seconds",
    "Time the web process waited on the API, per call",
    ["method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# What a person reads for the API's error codes (docs/api.md's envelope). The API's own message
# is shown for codes not listed here: they are written for people too.
MESSAGES: dict[str, str] = {
    "INVALID_CREDENTIALS": "That email and password do not match an account.",
    "TOTP_REQUIRED": "Enter the 6-digit code from your authenticator app.",
    "INVALID_TOTP": "That authenticator code is not right. Try the current one.",
    "RATE_LIMITED": "Too many attempts in a short time. Wait a minute and try again.",
    "INSUFFICIENT_FUNDS": "You do not have enough available cash for this.",
    "INSUFFICIENT_POSITION": "You do not hold enough contracts to sell that many.",
    "INSUFFICIENT_POINTS": "You do not have enough points for this reward.",
    "INSUFFICIENT_SHARES": "You do not hold enough shares for this.",
    "KYC_REQUIRED": "Verify your identity first (Identity page) to do this.",
    "CONTACT_UNVERIFIED": "Verify your email address and phone number first.",
    "INVALID_CODE": "That code is not right. Check the latest message and try again.",
    "CODE_EXPIRED": "That code has expired. Ask for a new one.",
    "INVALID_TOKEN": "That link is no longer valid. Ask for a new one.",
    "TOKEN_REUSED": "That link was already used.",
    "MARKET_CLOSED": "This market is closed for trading.",
    "MARKET_PAUSED": "Trading in this market is paused for now.",
    "ACCOUNT_RESTRICTED": "Your account is restricted. Contact support.",
    "ACCOUNT_DISABLED": "This account is disabled. Contact support.",
    "ADMIN_2FA_REQUIRED": "Operators must turn on two-factor authentication (Settings) first.",
    "FORBIDDEN": "You are not allowed to do that.",
    "RECENT_AUTH_REQUIRED": "Confirm your password again (Settings) before doing this.",
    "LIMIT_EXCEEDED": "This is over your account's limit for now.",
    "OUT_OF_STOCK": "That reward is sold out.",
    "OFFERING_SOLD_OUT": "This offering is fully subscribed.",
    "OFFERING_NOT_OPEN": "This offering is not open for subscriptions.",
    "INVESTOR_CAP_EXCEEDED": "That is more than one investor may hold in this offering.",
    "SERVICE_UNAVAILABLE": "PULL is busy right now. Try again in a moment.",
    "SERVICE_OVERLOADED": "PULL is busy right now. Try again in a moment.",
    "DEPENDENCY_UNAVAILABLE": "PULL is busy right now. Try again in a moment.",
    "BROKERAGE_ACCOUNT_REQUIRED": "Open a brokerage account first (Stocks page).",
    "BROKERAGE_UNAVAILABLE": "Stock and crypto prices are not available right now. Try again soon.",
    "UNAUTHORIZED": "Please sign in again.",
}


@dataclass
class ApiError(Exception):
    status: int
    code: str
    message: str
    details: Any = None
    request_id: str | None = None

    @property
    def human(self) -> str:
        """One sentence a person understands, with the reference to quote to support."""
        if self.code == "VALIDATION_ERROR" and isinstance(self.details, list) and self.details:
            parts = []
            for d in self.details[:3]:
                loc = [str(x) for x in d.get("loc", []) if x not in ("body", "query", "path")]
                field = " ".join(loc).replace("_", " ") or "input"
                parts.append(f"{field}: {d.get('msg', 'invalid')}")
            text = "Please check: " + "; ".join(parts) + "."
        else:
            text = MESSAGES.get(self.code) or self.message or "Something went wrong."
        if self.status >= 500 and self.code not in MESSAGES:
            text = "Something went wrong on our side. Try again in a moment."
        return text


@dataclass(frozen=True)
class RawResponse:
    """A whole answer as bytes (files: statements, charts); header names in lower case."""

    status: int
    headers: dict[str, str]
    content: bytes


class Api:
    """A thin caller of the public API; `token` is the user's access token, `client_ip` the
    browser's address (forwarded so the API's per-IP limits count people, not this process)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        """Made on first use, inside the running event loop (aiohttp requires one)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=self.timeout,
                connector=aiohttp.TCPConnector(limit=200, limit_per_host=200),
                headers={"User-Agent": "pull-web"},
                json_serialize=jsonlib.dumps,
                auto_decompress=True,
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        client_ip: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool = False,
        user_agent: str | None = None,
        raw: bool = False,
    ) -> Any:
        """The decoded answer (JSON, text or None); with `raw`, a RawResponse (files:
        statements, charts)."""
        headers: dict[str, str] = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if client_ip:
            headers["X-Forwarded-For"] = client_ip
        if user_agent:
            headers["User-Agent"] = user_agent[:200]
        if idempotent:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        started = time.perf_counter()
        status = "error"
        try:
            async with self.http.request(
                method,
                self.base_url + path,
                headers=headers,
                json=json,
                params={k: _param(v) for k, v in clean.items()},
            ) as r:
                body = await r.read()
                status = str(r.status)
                answer = RawResponse(r.status, {k.lower(): v for k, v in r.headers.items()}, body)
                reason = r.reason or ""
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(503, "SERVICE_UNAVAILABLE", f"API unreachable: {exc!r}") from exc
        finally:
            API_LATENCY.labels(method, status).observe(time.perf_counter() - started)
        if answer.status >= 400:
            raise _error(answer, reason)
        if raw:
            return answer
        if not body:
            return None
        if answer.headers.get("content-type", "").startswith("application/json"):
            return jsonlib.loads(body)
        return body.decode("utf-8", "replace")


def _param(value: Any) -> str:
    """Query values as the API reads them (booleans lower-case, as httpx wrote them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _error(r: RawResponse, reason: str) -> ApiError:
    try:
        decoded = jsonlib.loads(r.content)
        err = decoded.get("error", {}) if isinstance(decoded, dict) else {}
    except ValueError:
        err = {}
    if not isinstance(err, dict):
        err = {}
    return ApiError(
        status=r.status,
        code=str(err.get("code") or "HTTP_" + str(r.status)),
        message=str(err.get("message") or reason),
        details=err.get("details"),
        request_id=err.get("request_id") or r.headers.get("x-request-id"),
    )
