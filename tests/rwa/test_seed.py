"""`pull dev` demo data: two assets trading with a live book and one open offering; loading
twice changes nothing."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.ledger import service as ledger
from pull.rwa import service
from pull.seed import seed_all


async def test_demo_assets(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seed_all(settings)
    await seed_all(settings)
    async with sessionmaker() as s:
        listed = await service.listings(session=s)
        kinds = sorted(item.kind for item in listed)
        assert kinds == ["offering", "trading", "trading"]
        for item in listed:
            if item.kind == "trading":
                book = await service.orderbook(session=s, asset_id=item.asset.id)
                assert len(book.bids) == 2 and len(book.asks) == 2
                assert item.asset.shares_outstanding > 0
            else:
                assert item.offering is not None and item.offering.status == "open"
        assert (await ledger.trial_balance(session=s)).balanced
