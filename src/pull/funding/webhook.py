"""The Plaid webhook: a verified, deduplicated event becomes a deposit or withdrawal event."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.funding import repository as repo
from pull.funding.providers import signing
from pull.funding.providers.base import PlaidProvider
from pull.funding.service import (
    SIGNAL,
    signal_arg,
)
from pull.kit.outbox import signal_workflow_event

log = logging.getLogger("pull.funding")


# --- the Plaid webhook --------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookResult:
    received: int


async def handle_plaid_webhook(
    *,
    session: AsyncSession,
    provider: PlaidProvider,
    settings: Settings,
    body: bytes,
    verification: str | None,
) -> WebhookResult:
    """Verify (401 and nothing changes otherwise), then pull new transfer events with
    /transfer/event/sync, store each once by Plaid's event id, and signal its workflow."""

    async def fetch_key(kid: str) -> dict[str, Any]:
        return await provider.webhook_verification_key(key_id=kid)

    await signing.verify(
        verification, body, fetch_key, max_age_seconds=settings.plaid_webhook_max_age_seconds
    )
    try:
        payload = json.loads(body)
    except ValueError:
        payload = {}
    if payload.get("webhook_type") != "TRANSFER" or payload.get("webhook_code") not in (
        "TRANSFER_EVENTS_UPDATE",
    ):
        return WebhookResult(0)
    received = 0
    after_id = await repo.lock_cursor(session)  # one sync at a time
    while True:
        page = await provider.sync_transfer_events(after_id=after_id, count=100)
        for event in page.events:
            after_id = max(after_id, event.event_id)
            await repo.lock_transfer(session, event.transfer_id)
            new = await repo.store_event(
                session,
                event_id=event.event_id,
                transfer_id=event.transfer_id,
                event_type=event.event_type,
                payload=event.raw,
            )
            if not new:
                continue
            received += 1
            subject = await repo.subject_by_transfer(session, event.transfer_id)
            if subject is None:
                continue  # recorded; the activity that stores the transfer id signals it
            signal_workflow_event(
                session,
                workflow_id=f"{subject[0]}-{subject[1]}",
                signal=SIGNAL,
                arg=signal_arg(event.event_id, event.event_type, event.raw),
            )
        if not page.has_more or not page.events:
            break
    await repo.save_cursor(session, after_id)
    return WebhookResult(received)
