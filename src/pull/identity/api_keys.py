"""API keys (RSA public keys the customer registers) and the RSA-PSS signed requests they
authenticate (the Trade API, its WebSocket)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import repository as repo
from pull.identity import signing
from pull.identity.errors import (
    RecentAuthRequired,
    SignedRequestCannotCreateKeys,
)
from pull.identity.models import ApiKey
from pull.identity.schemas import (
    ApiKeyCreate,
    ApiKeyRead,
    AuthUser,
    RequestMeta,
)
from pull.identity.service import (
    DISABLED_STATUSES,
    SESSION_TOUCH_INTERVAL,
    record_audit,
)
from pull.kit.db import utcnow
from pull.kit.errors import Conflict, NotFound

MAX_API_KEYS = 10
# Creating an API key needs the password or a 2FA code proven this recently in the session.
RECENT_AUTH_WINDOW = dt.timedelta(minutes=5)


# --- API keys and signed requests ----------------------------------------------------------


async def revoke_all_api_keys(
    session: AsyncSession, *, user_id: uuid.UUID, now: dt.datetime, reason: str, meta: RequestMeta
) -> int:
    ids = await repo.revoke_user_api_keys(session, user_id, now, reason)
    for key_id in ids:
        record_audit(
            session,
            action="api_key.revoke",
            meta=meta,
            actor_id=user_id,
            resource=f"api_key:{key_id}",
            details={"reason": reason},
        )
    return len(ids)


def check_can_create_api_key(
    *, session: AsyncSession, caller: AuthUser, meta: RequestMeta, now: dt.datetime | None = None
) -> None:
    """Only a session that proved the password or a 2FA code in the last 5 minutes may create
    a key; a request signed with an API key never may. Refusals are audited."""
    reason = None
    if caller.session_id is None:
        reason = "signed_request"
    elif caller.authenticated_at is None or caller.authenticated_at < (
        (now or utcnow()) - RECENT_AUTH_WINDOW
    ):
        reason = "not_recently_authenticated"
    if reason is None:
        return
    record_audit(
        session,
        action="api_key.create_refused",
        meta=meta,
        actor_id=caller.id,
        details={"reason": reason},
    )
    raise SignedRequestCannotCreateKeys() if reason == "signed_request" else RecentAuthRequired()


async def create_api_key(
    *, session: AsyncSession, caller: AuthUser, data: ApiKeyCreate, meta: RequestMeta
) -> ApiKeyRead:
    """Register an RSA public key (2048 bits or more); the private key never reaches us."""
    check_can_create_api_key(session=session, caller=caller, meta=meta)
    user_id = caller.id
    key = signing.load_rsa_public_key(data.public_key_pem)
    if await repo.count_api_keys(session, user_id) >= MAX_API_KEYS:
        raise Conflict(f"At most {MAX_API_KEYS} API keys per account", code="TOO_MANY_API_KEYS")
    row = await repo.add_api_key(
        session,
        ApiKey(
            id=uuid.uuid4(),
            user_id=user_id,
            name=data.name.strip(),
            public_key_pem=signing.public_pem(key),
            fingerprint=signing.fingerprint(key),
            created_at=utcnow(),
        ),
    )
    record_audit(
        session,
        action="api_key.create",
        meta=meta,
        actor_id=user_id,
        resource=f"api_key:{row.id}",
        details={"fingerprint": row.fingerprint},
    )
    return _api_key_read(row)


def _api_key_read(row: ApiKey) -> ApiKeyRead:
    return ApiKeyRead(
        key_id=row.id,
        name=row.name,
        fingerprint=row.fingerprint,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
    )


async def list_api_keys(
    *, session: AsyncSession, user_id: uuid.UUID, include_revoked: bool = False
) -> list[ApiKeyRead]:
    rows = await repo.api_keys_of(session, user_id, include_revoked=include_revoked)
    return [_api_key_read(row) for row in rows]


async def revoke_api_key(
    *, session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID, meta: RequestMeta
) -> None:
    if not await repo.revoke_api_key(session, user_id, key_id, utcnow()):
        raise NotFound("API key not found", code="API_KEY_NOT_FOUND")
    record_audit(
        session, action="api_key.revoke", meta=meta, actor_id=user_id, resource=f"api_key:{key_id}"
    )


@dataclass(frozen=True)
class KeyAuth:
    """A live API key's owner (enabled or not: the caller decides) and its public key."""

    key_id: uuid.UUID
    user: AuthUser
    public_key_pem: str
    last_used_at: dt.datetime | None = None


async def api_key_auth(*, session: AsyncSession, key_id: uuid.UUID) -> KeyAuth | None:
    """The live API key `key_id` and its owner, from PostgreSQL."""
    found = await repo.api_key_with_user(session, key_id)
    if found is None or found[0].revoked_at is not None:
        return None
    key_row, user = found
    return KeyAuth(
        key_id=key_id,
        user=AuthUser(
            id=user.id,
            email=user.email,
            role=user.role,
            status=user.status,
            session_id=None,
            totp_enabled=user.totp_enabled_at is not None,
        ),
        public_key_pem=key_row.public_key_pem,
        last_used_at=key_row.last_used_at,
    )


async def touch_api_key(*, session: AsyncSession, key: KeyAuth) -> None:
    """Record the key's use (at most once a minute: a write on every request would cost more
    than the request)."""
    now = utcnow()
    if key.last_used_at is None or key.last_used_at < now - SESSION_TOUCH_INTERVAL:
        await repo.touch_api_key(session, key.key_id, now, now - SESSION_TOUCH_INTERVAL)


def check_signed(
    key: KeyAuth | None, *, timestamp: str, signature: str, method: str, path: str
) -> AuthUser:
    """The key's owner if its RSA-PSS signature over timestamp+method+path holds."""
    if key is None:
        raise signing.BadSignature("Unknown API key")
    signing.verify(key.public_key_pem, signature, timestamp + method.upper() + path)
    if key.user.status in DISABLED_STATUSES:
        raise signing.BadSignature("Account is not active")
    return key.user


def parse_key_id(key_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(key_id)
    except ValueError:
        raise signing.BadSignature("Unknown API key") from None


async def authenticate_signed(
    *,
    session: AsyncSession,
    key_id: str,
    timestamp: str,
    signature: str,
    method: str,
    path: str,
    now_ms: int | None = None,
) -> AuthUser:
    """The owner of a live API key whose RSA-PSS signature over timestamp+method+path holds."""
    signing.check_timestamp(timestamp, now_ms=now_ms)
    key = await api_key_auth(session=session, key_id=parse_key_id(key_id))
    user = check_signed(key, timestamp=timestamp, signature=signature, method=method, path=path)
    assert key is not None
    await touch_api_key(session=session, key=key)
    return user
