"""Demo data loaded by `pull dev`: each seeder is idempotent and commits its own work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.exchange.seed import seed_exchange
from pull.identity.seed import seed_identity
from pull.kit.db import make_engine, make_sessionmaker, session_scope

Seeder = Callable[[AsyncSession, Settings], Awaitable[None]]


def seeders() -> list[Seeder]:
    """Each module's demo-data seeder, in dependency order."""
    return [seed_identity, seed_exchange]


async def seed_all(settings: Settings) -> None:
    engine = make_engine(settings.database_url, pool_size=2, max_overflow=0)
    maker: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
    try:
        for seeder in seeders():
            async with session_scope(maker) as session:
                await seeder(session, settings)
    finally:
        await engine.dispose()
