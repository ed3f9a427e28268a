"""Demo catalog for `pull dev` / `pull seed`: added once, when the catalog is empty."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.rewards import redemption
from pull.rewards.schemas import ItemWrite

DEMO_CATALOG = [
    ItemWrite(
        name="$5 cash credit", kind="cash_credit", points_price=500, description="Paid to cash"
    ),
    ItemWrite(
        name="$10 gift card",
        kind="gift_card",
        points_price=1_000,
        stock=1_000,
        provider_product_id="sandbox-gift-card",
        face_value_cents=1_000,
    ),
    ItemWrite(name="Weekly sweepstakes entry", kind="sweepstakes", points_price=100),
    ItemWrite(name="PULL hoodie", kind="physical", points_price=5_000, stock=100),
]


async def seed_rewards(session: AsyncSession, settings: Settings) -> None:
    if await redemption.all_items(session=session):
        return
    for item in DEMO_CATALOG:
        await redemption.create_item(session=session, data=item)
