"""Operator commands behind `pull users ...` (the CLI itself stays a thin typer layer).

They talk to DATABASE_URL when it is set; otherwise (a laptop) to the PostgreSQL of a running
`pull dev` on PULL_DEV_POSTGRES_PORT, the same port `pull dev` starts it on.
"""

from __future__ import annotations

import os

from pull.config import Settings
from pull.identity import phone as phone_rules
from pull.identity import service
from pull.identity.schemas import UserRead
from pull.kit.db import make_engine, make_sessionmaker, session_scope


def cli_database_url(settings: Settings, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if env.get("DATABASE_URL", "").strip() or settings.is_deployed:
        return settings.database_url
    return f"postgresql+asyncpg://postgres@127.0.0.1:{settings.dev_postgres_port}/pull"


async def create_user(
    settings: Settings,
    *,
    email: str,
    password: str,
    admin: bool,
    verified: bool,
    phone: str | None = None,
) -> UserRead:
    """With `verified`, the email and the phone number are both marked verified (so the account
    can go on to KYC); `phone` alone is stored unverified."""
    engine = make_engine(cli_database_url(settings), pool_size=1, max_overflow=0)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            env = service.IdentityEnv.from_settings(settings)
            user = await service.create_user(
                session=session,
                env=env,
                email=email,
                password=password,
                role="admin" if admin else "user",
            )
            if verified:
                await service.mark_email_verified(session=session, user_id=user.id)
            if phone is not None:
                await phone_rules.set_phone_by_operator(
                    session=session, user_id=user.id, phone=phone, verified=verified
                )
            service.record_audit(
                session,
                action="user.create_cli",
                actor_id=user.id,
                details={"role": user.role, "verified": verified},
            )
            created = await service.get_user(session=session, user_id=user.id)
            assert created is not None
            return created
    finally:
        await engine.dispose()


async def grant_admin(settings: Settings, *, email: str) -> UserRead:
    engine = make_engine(cli_database_url(settings), pool_size=1, max_overflow=0)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            return await service.grant_admin(session=session, email=email)
    finally:
        await engine.dispose()
