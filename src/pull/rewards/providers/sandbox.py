"""A gift-card sandbox (the default outside production): deterministic by magic values.

- product id `sandbox-decline`: the order is declined (the redemption fails, points and stock
  come back);
- product id `sandbox-unavailable`: the provider is down (Temporal retries, then it fails);
- anything else: the order is executed at once; the same external id returns the same order.
"""

from __future__ import annotations

import hashlib

from pull.rewards.providers.base import (
    GiftCardDeclined,
    GiftCardOrder,
    GiftCardResult,
    GiftCardUnavailable,
)


class GiftCardSandbox:
    name = "sandbox"

    async def create_order(self, order: GiftCardOrder) -> GiftCardResult:
        if order.product_id == "sandbox-decline":
            raise GiftCardDeclined("sandbox: product declined")
        if order.product_id == "sandbox-unavailable":
            raise GiftCardUnavailable("sandbox: provider unavailable")
        digest = hashlib.sha256(order.external_id.encode()).hexdigest()[:12].upper()
        return GiftCardResult(
            order_id=f"SBX{digest}",
            status="EXECUTED",
            reward_ids=[f"SBXR{digest}"],
            delivery={"method": "EMAIL", "status": "SCHEDULED", "email": order.recipient_email},
        )
