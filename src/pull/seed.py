"""Demo data loaded by `pull dev`: each seeder is idempotent and commits its own work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.exchange.seed import seed_exchange
from pull.identity import service as identity
from pull.identity.seed import seed_identity
from pull.kit.db import make_engine, make_sessionmaker, session_scope
from pull.kyc import service as kyc
from pull.ledger import service as ledger
from pull.rewards.seed import seed_rewards
from pull.rwa.seed import seed_rwa

Seeder = Callable[[AsyncSession, Settings], Awaitable[None]]

DEMO_EMAIL = "demo@pull.dev"
DEMO_CASH_CENTS = 100_000


async def seed_demo_wallet(session: AsyncSession, settings: Settings) -> None:
    """Let the demo user trade at once: basic KYC tier and $1,000 as if deposited and settled."""
    user = await identity.get_user_by_email(session=session, email=DEMO_EMAIL)
    if user is None:
        return
    if await kyc.get_tier(session=session, user_id=user.id) == kyc.Tier.none:
        await kyc.set_tier(
            session=session, user_id=user.id, tier=kyc.Tier.basic, actor_id=None, note="demo user"
        )
    await ledger.transfer(
        session=session,
        idempotency_key="seed:demo-user:cash",
        kind="seed.deposit",
        legs=[
            ledger.Leg(ledger.system_account("bank_clearing"), -DEMO_CASH_CENTS),
            ledger.Leg(ledger.user_account(user.id, "cash"), DEMO_CASH_CENTS),
        ],
        reference="demo user starting cash",
    )


def seeders() -> list[Seeder]:
    """Each module's demo-data seeder, in dependency order."""
    return [seed_identity, seed_demo_wallet, seed_exchange, seed_rewards, seed_rwa]


async def seed_all(settings: Settings) -> None:
    engine = make_engine(settings.database_url, pool_size=2, max_overflow=0)
    maker: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
    try:
        for seeder in seeders():
            async with session_scope(maker) as session:
                await seeder(session, settings)
    finally:
        await engine.dispose()
