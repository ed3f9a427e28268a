"""A local fake of Tremendous' REST API v2 (the calls our client makes): bearer auth,
`POST /api/v2/orders` with Tremendous' order body, `GET /api/v2/orders?external_id=`,
Tremendous' error shape `{"errors": {"message", "payload"}}`."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "TEST_fake-tremendous-key"
PRODUCTS = {"OKMHM2X2OHYV": "Amazon.com", "ET0ZVETV5ILN": "Visa Prepaid"}


def _error(status: int, message: str, payload: Any = None) -> JSONResponse:
    return JSONResponse({"errors": {"message": message, "payload": payload or {}}}, status)


@dataclass
class FakeTremendous:
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)
    fail_next: int = 0  # answer this many requests with a 503

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/api/v2/orders", self.orders_route, methods=["GET", "POST"])]
        )

    async def orders_route(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "Unauthorized: invalid API key")
        if self.fail_next:
            self.fail_next -= 1
            return _error(503, "Service unavailable")
        if request.method == "GET":
            ext = request.query_params.get("external_id")
            found = [o for o in self.orders.values() if o["external_id"] == ext]
            return JSONResponse({"orders": found, "total_count": len(found)})
        raw = await request.body()
        self.bodies.append(raw)
        body = json.loads(raw, parse_float=Decimal)
        ext = body.get("external_id")
        if any(o["external_id"] == ext for o in self.orders.values()):
            return _error(409, "An order with this external_id already exists")
        reward = body.get("reward") or {}
        value = reward.get("value") or {}
        products = reward.get("products") or []
        if body.get("payment", {}).get("funding_source_id") != "balance":
            return _error(400, "Funding source not found")
        if not products or products[0] not in PRODUCTS:
            return _error(422, "Invalid product", {"reward": {"products": ["is invalid"]}})
        denomination = value.get("denomination")
        if not isinstance(denomination, Decimal) or denomination <= 0:
            return _error(422, "Invalid denomination")
        order_id = uuid.uuid4().hex[:12].upper()
        order = {
            "id": order_id,
            "external_id": ext,
            "status": "EXECUTED",
            "payment": {"subtotal": str(denomination), "total": str(denomination), "fees": "0"},
            "rewards": [
                {
                    "id": uuid.uuid4().hex[:12].upper(),
                    "order_id": order_id,
                    "value": {"denomination": str(denomination), "currency_code": "USD"},
                    "recipient": reward.get("recipient"),
                    "delivery": {"method": "EMAIL", "status": "SCHEDULED"},
                }
            ],
        }
        self.orders[order_id] = order
        return JSONResponse({"order": order}, status_code=201)
