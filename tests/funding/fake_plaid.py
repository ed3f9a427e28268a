"""A local fake of Plaid's HTTP API (JSON in, JSON out, Plaid's error shape), enough for the
calls our client makes, with its own ES256 webhook key. Not a sandbox: the test decides what
happens to each transfer (`emit`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pull.funding.providers import signing

CLIENT_ID = "fake-client-id"
SECRET = "fake-secret"


def _error(status: int, error_type: str, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "error_type": error_type,
            "error_code": code,
            "error_message": message,
            "display_message": None,
            "request_id": uuid.uuid4().hex[:15],
        },
        status_code=status,
    )


@dataclass
class FakePlaid:
    key: Any = field(default_factory=lambda: signing.sandbox_private_key("fake plaid"))
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    public_tokens: dict[str, str] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)  # access token -> item id
    authorizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    transfers: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    refuse_transfers: bool = False

    @property
    def jwk(self) -> dict[str, Any]:
        return signing.public_jwk(self.key, created_at=1_700_000_000)

    def emit(self, transfer_id: str, event_type: str) -> int:
        transfer = self.transfers[transfer_id]
        self.events.append(
            {
                "event_id": len(self.events) + 1,
                "timestamp": "2026-11-26T12:00:00Z",
                "event_type": event_type,
                "account_id": transfer["account_id"],
                "funding_account_id": None,
                "transfer_id": transfer_id,
                "origination_account_id": None,
                "transfer_type": transfer["type"],
                "transfer_amount": transfer["amount"],
                "failure_reason": None,
                "sweep_id": None,
                "sweep_amount": None,
                "refund_id": None,
            }
        )
        return len(self.events)

    def webhook(self) -> tuple[bytes, dict[str, str]]:
        body = signing.webhook_body("sandbox")
        return body, {
            "Content-Type": "application/json",
            signing.HEADER: signing.sign(self.key, body),
        }

    async def _handle(self, request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        path = request.url.path
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append((path, body, headers))
        if headers.get("plaid-client-id") != CLIENT_ID or headers.get("plaid-secret") != SECRET:
            return _error(400, "INVALID_INPUT", "INVALID_API_KEYS", "invalid client_id or secret")
        rid = {"request_id": uuid.uuid4().hex[:15]}
        if path == "/link/token/create":
            return JSONResponse(
                {
                    "link_token": f"link-sandbox-{uuid.uuid4()}",
                    "expiration": "2026-11-27T00:00:00Z",
                    **rid,
                }
            )
        if path == "/sandbox/public_token/create":
            options = body.get("options") or {}
            if options.get("override_username", "user_good") != "user_good":
                return _error(400, "ITEM_ERROR", "INVALID_CREDENTIALS", "bad credentials")
            token = f"public-sandbox-{uuid.uuid4()}"
            self.public_tokens[token] = uuid.uuid4().hex
            return JSONResponse({"public_token": token, **rid})
        if path == "/item/public_token/exchange":
            item = self.public_tokens.pop(body["public_token"], None)
            if item is None:
                return _error(400, "INVALID_INPUT", "INVALID_PUBLIC_TOKEN", "invalid public token")
            access = f"access-sandbox-{uuid.uuid4()}"
            self.items[access] = item
            return JSONResponse({"access_token": access, "item_id": item, **rid})
        if path == "/item/public_token/create":
            item = self.items.get(body["access_token"])
            if item is None:
                return _error(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN", "invalid access token")
            token = f"public-sandbox-{uuid.uuid4()}"
            self.public_tokens[token] = item
            return JSONResponse(
                {"public_token": token, "expiration": "2026-11-27T00:00:00Z", **rid}
            )
        if path == "/accounts/get":
            item = self.items.get(body["access_token"])
            if item is None:
                return _error(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN", "invalid access token")
            return JSONResponse(
                {
                    "accounts": [
                        {
                            "account_id": f"acc-{item}",
                            "name": "Plaid Checking",
                            "official_name": "Plaid Gold Standard 0% Interest Checking",
                            "mask": "0000",
                            "type": "depository",
                            "subtype": "checking",
                            "balances": {
                                "available": 100,
                                "current": 110,
                                "iso_currency_code": "USD",
                            },
                        }
                    ],
                    "item": {
                        "item_id": item,
                        "institution_id": "ins_109508",
                        "institution_name": "First Platypus Bank",
                    },
                    **rid,
                }
            )
        if path == "/item/remove":
            # The item goes, with every access token to it (as at Plaid).
            item = self.items.get(body["access_token"])
            if item is None:
                return _error(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN", "invalid access token")
            self.items = {a: i for a, i in self.items.items() if i != item}
            return JSONResponse({**rid})
        if path == "/transfer/authorization/create":
            if self.refuse_transfers:
                return _error(400, "TRANSFER_ERROR", "TRANSFER_ACCOUNT_BLOCKED", "blocked")
            auth_id = str(uuid.uuid4())
            self.authorizations[auth_id] = body
            return JSONResponse(
                {
                    "authorization": {
                        "id": auth_id,
                        "created": "2026-11-26T12:00:00Z",
                        "decision": "approved",
                        "decision_rationale": None,
                        "guarantee_decision": None,
                        "guarantee_decision_rationale": None,
                        "payment_risk": None,
                        "proposed_transfer": {"amount": body["amount"], "type": body["type"]},
                    },
                    **rid,
                }
            )
        if path == "/transfer/create":
            auth = self.authorizations[body["authorization_id"]]
            transfer_id = str(uuid.uuid4())
            self.transfers[transfer_id] = {
                "id": transfer_id,
                "account_id": body["account_id"],
                "type": auth["type"],
                "amount": body["amount"],
            }
            return JSONResponse(
                {"transfer": {**self.transfers[transfer_id], "status": "pending"}, **rid}
            )
        if path == "/transfer/event/sync":
            after = int(body["after_id"])
            count = int(body.get("count", 25))
            page = self.events[after : after + count]
            return JSONResponse(
                {"transfer_events": page, "has_more": after + count < len(self.events), **rid}
            )
        if path == "/webhook_verification_key/get":
            if body["key_id"] != self.jwk["kid"]:
                return _error(
                    400, "INVALID_INPUT", "INVALID_WEBHOOK_VERIFICATION_KEY_ID", "no such key"
                )
            return JSONResponse({"key": self.jwk, **rid})
        return _error(404, "API_ERROR", "NOT_FOUND", f"unknown path {path}")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
