"""`pull dev` demo data: loads on an empty database, and loading twice changes nothing."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.identity import service as identity
from pull.kyc import service as kyc
from pull.ledger import service as ledger
from pull.seed import DEMO_CASH_CENTS, DEMO_EMAIL, seed_all


async def test_demo_user_can_trade_and_seeding_is_idempotent(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seed_all(settings)
    await seed_all(settings)
    async with sessionmaker() as session:
        user = await identity.get_user_by_email(session=session, email=DEMO_EMAIL)
        assert user is not None
        assert await kyc.get_tier(session=session, user_id=user.id) == kyc.Tier.basic
        balance = await ledger.get_balance(session=session, user_id=user.id)
        assert balance.available == DEMO_CASH_CENTS
        assert balance.total == DEMO_CASH_CENTS
        trial = await ledger.trial_balance(session=session)
        assert trial.balanced
