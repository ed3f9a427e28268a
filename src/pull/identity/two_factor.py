"""Two-factor authentication: TOTP enrolment, its codes and the one-time recovery codes."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import repository as repo
from pull.identity import totp
from pull.identity.models import User
from pull.identity.schemas import (
    RecoveryCodesResponse,
    RequestMeta,
    TotpSetupResponse,
)
from pull.identity.service import (
    IdentityEnv,
    record_audit,
    require_user,
)
from pull.kit.crypto import sha256_hex
from pull.kit.db import utcnow
from pull.kit.errors import Conflict, Unprocessable


async def check_second_factor(
    session: AsyncSession, *, env: IdentityEnv, user: User, code: str
) -> bool:
    """A TOTP code (never one already accepted) or an unused recovery code (spent now)."""
    if user.totp_secret_enc is None:
        return False
    secret = env.cipher.decrypt(user.totp_secret_enc)
    step = totp.matching_step(secret, code, after_step=user.totp_last_step)
    if step is not None:
        user.totp_last_step = step
        return True
    normalized = totp.normalize_recovery_code(code)
    if normalized is None:
        return False
    return await repo.use_recovery_code(session, user.id, sha256_hex(normalized), utcnow())


# --- two-factor authentication --------------------------------------------------------------


async def totp_setup(
    *, session: AsyncSession, env: IdentityEnv, user_id: uuid.UUID, meta: RequestMeta
) -> TotpSetupResponse:
    """Start (or restart) enrolment: a new secret, active only once a code proves it works."""
    user = await require_user(session, user_id)
    if user.totp_enabled_at is not None:
        raise Conflict("Two-factor authentication is already on", code="TOTP_ALREADY_ENABLED")
    secret = totp.new_secret()
    user.totp_secret_enc = env.cipher.encrypt(secret)
    user.totp_last_step = None
    record_audit(session, action="2fa.setup", meta=meta, actor_id=user.id)
    await session.flush()
    return TotpSetupResponse(otpauth_uri=totp.provisioning_uri(secret, user.email), secret=secret)


async def _new_recovery_codes(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    codes = totp.new_recovery_codes()
    hashes = [sha256_hex(totp.normalize_recovery_code(c) or c) for c in codes]
    await repo.replace_recovery_codes(session, user_id, hashes)
    return codes


async def totp_enable(
    *, session: AsyncSession, env: IdentityEnv, user_id: uuid.UUID, code: str, meta: RequestMeta
) -> RecoveryCodesResponse:
    """Turn 2FA on with a first valid code; answers with the recovery codes, shown once."""
    user = await require_user(session, user_id)
    if user.totp_enabled_at is not None:
        raise Conflict("Two-factor authentication is already on", code="TOTP_ALREADY_ENABLED")
    if user.totp_secret_enc is None:
        raise Conflict("Call /api/auth/2fa/setup first", code="TOTP_NOT_SET_UP")
    step = totp.matching_step(env.cipher.decrypt(user.totp_secret_enc), code)
    if step is None:
        raise Unprocessable("Invalid two-factor code", code="INVALID_TOTP")
    user.totp_last_step = step
    user.totp_enabled_at = utcnow()
    codes = await _new_recovery_codes(session, user.id)
    record_audit(session, action="2fa.enable", meta=meta, actor_id=user.id)
    return RecoveryCodesResponse(recovery_codes=codes)


async def _require_second_factor(
    session: AsyncSession, *, env: IdentityEnv, user: User, code: str
) -> None:
    if user.totp_enabled_at is None:
        raise Conflict("Two-factor authentication is off", code="TOTP_NOT_ENABLED")
    if not await check_second_factor(session, env=env, user=user, code=code):
        raise Unprocessable("Invalid two-factor code", code="INVALID_TOTP")


async def totp_disable(
    *, session: AsyncSession, env: IdentityEnv, user_id: uuid.UUID, code: str, meta: RequestMeta
) -> None:
    """Turn 2FA off with a current code or a recovery code; the recovery codes are dropped."""
    user = await require_user(session, user_id)
    await _require_second_factor(session, env=env, user=user, code=code)
    user.totp_secret_enc = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    await repo.delete_recovery_codes(session, user.id)
    record_audit(session, action="2fa.disable", meta=meta, actor_id=user.id)


async def regenerate_recovery_codes(
    *, session: AsyncSession, env: IdentityEnv, user_id: uuid.UUID, code: str, meta: RequestMeta
) -> RecoveryCodesResponse:
    """Replace every recovery code (the old ones stop working); needs a current 2FA code."""
    user = await require_user(session, user_id)
    await _require_second_factor(session, env=env, user=user, code=code)
    codes = await _new_recovery_codes(session, user.id)
    record_audit(session, action="2fa.recovery_codes", meta=meta, actor_id=user.id)
    return RecoveryCodesResponse(recovery_codes=codes)
