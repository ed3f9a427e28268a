"""A local fake of Twilio Verify v2's REST API (form-encoded in, JSON out, Twilio's error
shape, HTTP Basic auth with the account SID and auth token), enough for the calls PULL makes.
Codes are kept in memory and readable by the test (`codes`)."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "fake-auth-token"
SERVICE_SID = "VA" + "0" * 31 + "2"


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


async def _form(request: Request) -> dict[str, str]:
    """The form-encoded body (Twilio's request format)."""
    assert request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeTwilio:
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    verifications: dict[str, dict[str, Any]] = field(default_factory=dict)  # sid -> resource
    codes: dict[str, str] = field(default_factory=dict)  # number -> current code
    max_sends: int = 5

    def _authorized(self, request: Request) -> bool:
        expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def _resource(self, sid: str) -> dict[str, Any]:
        v = self.verifications[sid]
        return {
            "sid": sid,
            "service_sid": SERVICE_SID,
            "account_sid": ACCOUNT_SID,
            "to": v["to"],
            "channel": "sms",
            "status": v["status"],
            "valid": v["status"] == "approved",
            "lookup": {},
            "amount": None,
            "payee": None,
            "send_code_attempts": [
                {"time": t, "channel": "SMS", "attempt_sid": "VL" + secrets.token_hex(16)}
                for t in v["sends"]
            ],
            "date_created": v["created"],
            "date_updated": _now(),
            "sna": None,
            "url": f"https://verify.twilio.com/v2/Services/{SERVICE_SID}/Verifications/{sid}",
        }

    async def verifications_create(self, request: Request) -> JSONResponse:
        form = await _form(request)
        self.requests.append((request.url.path, form))
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        if request.path_params["service"] != SERVICE_SID:
            return _error(404, 20404, "The requested resource was not found")
        to = str(form.get("To", ""))
        if form.get("Channel") != "sms":
            return _error(400, 60200, "Invalid parameter `Channel`")
        if not to.startswith("+") or not to[1:].isdigit():
            return _error(400, 60200, "Invalid parameter `To`")
        pending = next(
            (
                s
                for s, v in self.verifications.items()
                if v["to"] == to and v["status"] == "pending"
            ),
            None,
        )
        if pending is None:
            pending = "VE" + secrets.token_hex(16)
            self.verifications[pending] = {
                "to": to,
                "status": "pending",
                "created": _now(),
                "sends": [],
                "checks": 0,
            }
            self.codes[to] = f"{secrets.randbelow(10**6):06d}"
        v = self.verifications[pending]
        if len(v["sends"]) >= self.max_sends:
            return _error(429, 60203, "Max send attempts reached")
        v["sends"].append(_now())
        return JSONResponse(self._resource(pending), status_code=201)

    async def checks_create(self, request: Request) -> JSONResponse:
        form = await _form(request)
        self.requests.append((request.url.path, form))
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        sid = str(form.get("VerificationSid", ""))
        v = self.verifications.get(sid)
        if v is None or v["status"] != "pending":
            return _error(
                404,
                20404,
                f"The requested resource /Services/{SERVICE_SID}/VerificationCheck was not found",
            )
        v["checks"] += 1
        if v["checks"] > 5:
            return _error(429, 60202, "Max check attempts reached")
        if str(form.get("Code", "")) == self.codes[v["to"]]:
            v["status"] = "approved"
        body = self._resource(sid)
        body.pop("send_code_attempts")
        body.pop("lookup")
        body["sna_attempts_error_codes"] = []
        return JSONResponse(body)

    def expire(self, to: str) -> None:
        for v in self.verifications.values():
            if v["to"] == to and v["status"] == "pending":
                v["status"] = "canceled"

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/v2/Services/{service}/Verifications",
                    self.verifications_create,
                    methods=["POST"],
                ),
                Route(
                    "/v2/Services/{service}/VerificationCheck",
                    self.checks_create,
                    methods=["POST"],
                ),
            ]
        )
