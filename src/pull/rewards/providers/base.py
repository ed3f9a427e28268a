"""The gift-card provider contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class GiftCardOrder:
    external_id: str  # our redemption id: the provider's idempotency key
    product_id: str
    amount_cents: int
    recipient_name: str
    recipient_email: str
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class GiftCardResult:
    order_id: str
    status: str
    reward_ids: list[str] = field(default_factory=list)
    delivery: dict[str, Any] = field(default_factory=dict)


class GiftCardDeclined(Exception):
    """The provider refused the order for good (bad product, funding, recipient): not retried."""


class GiftCardUnavailable(Exception):
    """The provider could not be reached or failed (5xx, 429, timeout): retried."""


class GiftCardProvider(Protocol):
    name: str

    async def create_order(self, order: GiftCardOrder) -> GiftCardResult: ...
