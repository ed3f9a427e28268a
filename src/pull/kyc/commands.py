"""Operator commands behind `pull users set-kyc` (support cases)."""

from __future__ import annotations

from pull.config import Settings
from pull.identity import service as identity
from pull.identity.commands import cli_database_url
from pull.identity.schemas import UserRead
from pull.kit.db import make_engine, make_sessionmaker, session_scope
from pull.kit.errors import Forbidden, NotFound, Unprocessable
from pull.kyc import service
from pull.kyc.schemas import Tier


async def set_kyc(
    settings: Settings, *, email: str, tier: str, reason: str, operator: str
) -> UserRead:
    """Set `email`'s tier; `operator` must be an admin account, recorded as the audit actor."""
    try:
        new = Tier(tier.strip().lower())
    except ValueError:
        choices = ", ".join(t.value for t in Tier)
        raise Unprocessable(
            f"Unknown tier {tier!r} (one of {choices})", code="INVALID_TIER"
        ) from None
    if not reason.strip():
        raise Unprocessable("A reason is required", code="REASON_REQUIRED")
    engine = make_engine(cli_database_url(settings), pool_size=1, max_overflow=0)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            admin = await identity.get_user_by_email(session=session, email=operator)
            if admin is None or admin.role != "admin":
                raise Forbidden("--operator must be an admin account", code="NOT_AN_OPERATOR")
            user = await identity.get_user_by_email(session=session, email=email)
            if user is None:
                raise NotFound("User not found", code="USER_NOT_FOUND")
            await service.set_tier(
                session=session,
                user_id=user.id,
                tier=new,
                actor_id=admin.id,
                note=f"cli: {reason.strip()}"[:500],
            )
            return user
    finally:
        await engine.dispose()
