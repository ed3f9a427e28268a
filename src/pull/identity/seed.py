"""Demo accounts for `pull dev` (documented in README; never loaded outside development)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.identity import repository as repo
from pull.identity import service
from pull.kit.db import utcnow

DEMO_ADMIN = ("admin@pull.dev", "PullAdmin-2024", "Demo Admin", "admin", "+15550000001")
DEMO_USER = ("demo@pull.dev", "PullDemo-2024", "Demo User", "user", "+15550000002")
# Admin routes require 2FA, so the demo admin has it on with this published development secret
# (codes: `oathtool --totp -b SECRET`, or pyotp.TOTP(SECRET).now()).
DEMO_ADMIN_TOTP_SECRET = "PULLDEVADMIN2FAPULLDEVADMIN2FA23"  # noqa: S105 - dev only


async def seed_identity(session: AsyncSession, settings: Settings) -> None:
    """Idempotent: existing accounts are left exactly as they are."""
    env = service.IdentityEnv.from_settings(settings)
    for email, password, name, role, phone in (DEMO_ADMIN, DEMO_USER):
        if await service.get_user_by_email(session=session, email=email) is not None:
            continue
        user = await service.create_user(
            session=session,
            env=env,
            email=email,
            password=password,
            display_name=name,
            role=role,
        )
        await service.mark_email_verified(session=session, user_id=user.id)
        await service.set_phone_verified(session=session, user_id=user.id, phone=phone)
        if role == "admin":
            user.totp_secret_enc = env.cipher.encrypt(DEMO_ADMIN_TOTP_SECRET)
            user.totp_enabled_at = utcnow()
            await repo.add_user(session, user)
