"""Tremendous (gift cards) over its REST API v2 with httpx.

`POST {base}/orders` with `Authorization: Bearer <key>` and our redemption id as
`external_id` (Tremendous refuses a second order with the same external id, so retries never
buy twice: on that refusal we look the first order up). Amounts go on the wire as decimal
dollars written from integer cents, never through a float.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from pull.rewards.providers.base import (
    GiftCardDeclined,
    GiftCardOrder,
    GiftCardResult,
    GiftCardUnavailable,
)

_DENOMINATION = "__denomination__"


def dollars(cents: int) -> str:
    """Integer cents as a JSON number of dollars: 2550 -> 25.50."""
    return f"{cents // 100}.{cents % 100:02d}"


def order_body(order: GiftCardOrder, funding_source_id: str) -> bytes:
    body: dict[str, Any] = {
        "external_id": order.external_id,
        "payment": {"funding_source_id": funding_source_id},
        "reward": {
            "value": {"denomination": _DENOMINATION, "currency_code": order.currency},
            "delivery": {"method": "EMAIL"},
            "recipient": {"name": order.recipient_name, "email": order.recipient_email},
            "products": [order.product_id],
        },
    }
    text = json.dumps(body, separators=(",", ":"))
    return text.replace(f'"{_DENOMINATION}"', dollars(order.amount_cents)).encode()


def _result(data: dict[str, Any]) -> GiftCardResult:
    order = data.get("order") or {}
    rewards = order.get("rewards") or []
    delivery = (rewards[0].get("delivery") if rewards else None) or {}
    return GiftCardResult(
        order_id=str(order.get("id")),
        status=str(order.get("status")),
        reward_ids=[str(r.get("id")) for r in rewards],
        delivery=delivery,
    )


def _message(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or {}
        return str(errors.get("message") or response.text)[:500]
    except (ValueError, AttributeError):
        return response.text[:500]


class TremendousClient:
    name = "tremendous"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        funding_source_id: str = "balance",
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.funding_source_id = funding_source_id
        self.timeout = timeout
        self.transport = transport

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.timeout,
            transport=self.transport,
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )

    async def create_order(self, order: GiftCardOrder) -> GiftCardResult:
        try:
            async with self._client() as client:
                response = await client.post(
                    "/orders", content=order_body(order, self.funding_source_id)
                )
                if response.status_code == 409:
                    return await self._existing(client, order.external_id)
                self._raise_for(response)
                return _result(response.json())
        except httpx.HTTPError as exc:
            raise GiftCardUnavailable(f"tremendous: {type(exc).__name__}") from exc

    async def _existing(self, client: httpx.AsyncClient, external_id: str) -> GiftCardResult:
        response = await client.get("/orders", params={"external_id": external_id})
        self._raise_for(response)
        orders = response.json().get("orders") or []
        if not orders:
            raise GiftCardUnavailable("tremendous: duplicate order not found yet")
        return _result({"order": orders[0]})

    @staticmethod
    def _raise_for(response: httpx.Response) -> None:
        if response.status_code in (200, 201):
            return
        if response.status_code == 429 or response.status_code >= 500:
            raise GiftCardUnavailable(f"tremendous {response.status_code}: {_message(response)}")
        raise GiftCardDeclined(f"tremendous {response.status_code}: {_message(response)}")
