"""The broker account opens itself when KYC approves the customer.

The relay hands this module KYC's committed `kyc.approved` {user_id, tier} and
`kyc.tier_changed` {user_id, from, to} outbox events (after their own handler, the Redis
publish). At tier `standard` or above the customer's broker account is opened from the
approved application's data, exactly as `POST /api/v1/trading/account` does (which stays, for
customers approved before this existed and as the manual retry): both take the user lock and
return an account that exists, so a relay retry or a racing request opens one account only.

- A broker that cannot be reached raises: the event stays undelivered and the relay retries it.
- A tier without an approved application (an operator's `set-kyc`), or a broker that refuses
  the data, is logged and left: the customer can still open the account through the API.
- No broker configured (deployed without Alpaca keys): nothing to open.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.brokerage import accounts
from pull.brokerage.errors import BrokerageUnavailable, KycDataMissing
from pull.brokerage.providers.factory import make_broker
from pull.identity import account as identity_account
from pull.kit.crypto import FieldCipher
from pull.kit.db import session_scope
from pull.kit.outbox import Handler, OutboxEvent
from pull.kit.runtime import worker_runtime
from pull.kyc import service as kyc

log = logging.getLogger("pull.brokerage.onboarding")

TOPICS = ("kyc.approved", "kyc.tier_changed")
OPENING_TIERS = frozenset(t.value for t in accounts.TIERS_ALLOWED)
FALLBACK_IP = "127.0.0.1"


def approved_tier(topic: str, payload: dict[str, object]) -> str | None:
    """The tier the event grants, or None when it grants none (a downgrade, expiry)."""
    tier = payload.get("tier") if topic == "kyc.approved" else payload.get("to")
    return str(tier) if tier is not None else None


async def open_on_approval(event: OutboxEvent) -> None:
    """Open the user's broker account if the event leaves them at standard or above."""
    tier = approved_tier(event.topic, event.payload)
    if tier not in OPENING_TIERS:
        return
    try:
        user_id = uuid.UUID(str(event.payload["user_id"]))
    except (KeyError, ValueError):
        log.warning("kyc event without a user", extra={"event_id": event.id})
        return
    rt = worker_runtime()
    try:
        broker = make_broker(rt.settings, rt.sessionmaker)
    except BrokerageUnavailable:
        return
    cipher = FieldCipher(rt.settings.field_encryption_keys)
    async with session_scope(rt.sessionmaker) as session:
        ip = await _last_ip(session=session, user_id=user_id)
        try:
            _, created = await accounts.open_account(
                session=session, broker=broker, cipher=cipher, user_id=user_id, ip_address=ip
            )
        except (KycDataMissing, kyc.KycRequired) as exc:
            log.info(
                "broker account not opened on approval",
                extra={"user_id": str(user_id), "reason": exc.code},
            )
            return
    if created:
        log.info("broker account opened on kyc approval", extra={"user_id": str(user_id)})


async def _last_ip(*, session: AsyncSession, user_id: uuid.UUID) -> str:
    """The IP of the customer's most recently used session: Alpaca records the agreements'
    signing IP; the approval event itself has none."""
    sessions = await identity_account.list_sessions(
        session=session, user_id=user_id, current_session_id=None
    )
    used = [s for s in sessions if s.ip]
    if not used:
        return FALLBACK_IP
    return str(max(used, key=lambda s: s.last_used_at).ip)


def with_brokerage(handlers: dict[str, Handler]) -> dict[str, Handler]:
    """The relay's handlers with the account opening after each KYC topic's own handler."""
    out = dict(handlers)
    for topic in TOPICS:
        first = handlers.get(topic)

        async def handle(event: OutboxEvent, first: Handler | None = first) -> None:
            if first is not None:
                await first(event)
            await open_on_approval(event)

        out[topic] = handle
    return out
