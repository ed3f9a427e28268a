"""A local fake of Nylas API v3, speaking its wire format, for the real client (the `nylas`
SDK). Bearer API-key auth; `{"request_id", "data", "next_cursor"}` envelopes; errors as
`{"request_id", "error": {"type", "message"}}`; token exchange as /v3/connect/token answers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "nyk_v0_test_key"
CLIENT_ID = "fake-client-id"


@dataclass
class FakeNylas:
    grants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)  # code -> grant id
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)

    def add_grant(self, grant_id: str, count: int) -> None:
        self.grants[grant_id] = [
            {
                "id": f"m{i:04d}",
                "object": "message",
                "grant_id": grant_id,
                "thread_id": f"t{i:04d}",
                "subject": f"Subject {i}",
                "from": [{"name": "Sender", "email": "sender@example.com"}],
                "to": [{"name": "", "email": "me@example.com"}],
                "date": 1_790_000_000 + i,
                "unread": True,
                "starred": False,
                "folders": ["INBOX"],
                "snippet": f"snippet {i}",
                "body": f"<p>body {i}</p>",
            }
            for i in range(count)
        ][::-1]

    def app(self) -> Starlette:
        def error(status: int, kind: str) -> JSONResponse:
            return JSONResponse(
                {"request_id": secrets.token_hex(6), "error": {"type": kind, "message": kind}},
                status_code=status,
            )

        def authorized(request: Request) -> bool:
            return request.headers.get("authorization") == f"Bearer {API_KEY}"

        async def token(request: Request) -> JSONResponse:
            body = await request.json()
            self.requests.append(("POST", "/v3/connect/token", body))
            grant = self.codes.pop(body.get("code", ""), None)
            if body.get("client_secret") != API_KEY or grant is None:
                return JSONResponse(
                    {
                        "request_id": secrets.token_hex(6),
                        "error": "invalid_request",
                        "error_code": 400,
                        "error_description": "the code is invalid or was already used",
                        "error_uri": "https://accounts.nylas.io/#tag/Event-Codes",
                    },
                    status_code=400,
                )
            return JSONResponse(
                {
                    "access_token": "at_" + secrets.token_hex(8),
                    "token_type": "Bearer",
                    "grant_id": grant,
                    "email": "me@example.com",
                    "expires_in": 3600,
                    "scope": "https://www.googleapis.com/auth/gmail.modify",
                    "provider": "google",
                }
            )

        async def messages(request: Request) -> JSONResponse:
            if not authorized(request):
                return error(401, "unauthorized")
            grant = request.path_params["grant"]
            if grant not in self.grants:
                return error(404, "not_found_error")
            limit = int(request.query_params.get("limit", "50"))
            if limit > 200:
                return error(400, "invalid_request_error")
            start = int(request.query_params.get("page_token", "0"))
            self.requests.append(
                ("GET", f"/v3/grants/{grant}/messages", dict(request.query_params))
            )
            rows = self.grants[grant][start : start + limit]
            nxt = start + len(rows)
            body: dict[str, Any] = {"request_id": secrets.token_hex(6), "data": rows}
            if nxt < len(self.grants[grant]):
                body["next_cursor"] = str(nxt)
            return JSONResponse(body)

        async def message(request: Request) -> JSONResponse:
            if not authorized(request):
                return error(401, "unauthorized")
            grant, mid = request.path_params["grant"], request.path_params["mid"]
            rows = {m["id"]: m for m in self.grants.get(grant, [])}
            if grant not in self.grants or mid not in rows:
                return error(404, "not_found_error")
            if request.method == "PUT":
                changes = await request.json()
                self.requests.append(("PUT", f"/v3/grants/{grant}/messages/{mid}", changes))
                rows[mid].update(changes)
            return JSONResponse({"request_id": secrets.token_hex(6), "data": rows[mid]})

        async def send(request: Request) -> JSONResponse:
            if not authorized(request):
                return error(401, "unauthorized")
            grant = request.path_params["grant"]
            if grant not in self.grants:
                return error(404, "not_found_error")
            body = await request.json()
            self.requests.append(("POST", f"/v3/grants/{grant}/messages/send", body))
            sent = {
                **body,
                "id": "sent_" + secrets.token_hex(4),
                "object": "message",
                "grant_id": grant,
                "thread_id": "t_sent",
                "date": 1_795_000_000,
                "folders": ["SENT"],
            }
            return JSONResponse({"request_id": secrets.token_hex(6), "data": sent})

        async def grant(request: Request) -> JSONResponse:
            if not authorized(request):
                return error(401, "unauthorized")
            gid = request.path_params["grant"]
            if self.grants.pop(gid, None) is None:
                return error(404, "not_found_error")
            self.requests.append(("DELETE", f"/v3/grants/{gid}", None))
            return JSONResponse({"request_id": secrets.token_hex(6)})

        return Starlette(
            routes=[
                Route("/v3/connect/token", token, methods=["POST"]),
                Route("/v3/grants/{grant}/messages", messages, methods=["GET"]),
                Route("/v3/grants/{grant}/messages/send", send, methods=["POST"]),
                Route("/v3/grants/{grant}/messages/{mid}", message, methods=["GET", "PUT"]),
                Route("/v3/grants/{grant}", grant, methods=["DELETE"]),
            ]
        )
