"""Operator commands behind `pull users restrict|unrestrict` (the CLI stays a thin typer
layer); they read DATABASE_URL, or the database of a running `pull dev`."""

from __future__ import annotations

from pull.config import Settings
from pull.funding import recovery
from pull.funding.schemas import RestrictionRead
from pull.identity import service as identity
from pull.identity.commands import cli_database_url
from pull.kit.db import make_engine, make_sessionmaker, session_scope
from pull.kit.errors import NotFound


async def set_restricted(
    settings: Settings, *, email: str, restricted: bool, reason: str
) -> RestrictionRead:
    engine = make_engine(cli_database_url(settings), pool_size=1, max_overflow=0)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            user = await identity.get_user_by_email(session=session, email=email)
            if user is None:
                raise NotFound("User not found", code="USER_NOT_FOUND")
            return await recovery.set_restricted(
                session=session,
                user_id=user.id,
                restricted=restricted,
                reason=f"{reason} (pull users {'restrict' if restricted else 'unrestrict'})",
                actor_id=None,
            )
    finally:
        await engine.dispose()
