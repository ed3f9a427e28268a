"""KYC provider webhooks (Persona, Checkr, Parallel Markets): parsing and intake, stored once
by event id and signalled to the applicant's workflow."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from pull.kit.crypto import FieldCipher
from pull.kit.db import utcnow
from pull.kit.errors import NotFound, Unprocessable
from pull.kit.outbox import signal_workflow_event
from pull.kyc import repository as repo
from pull.kyc.applications import (
    workflow_id,
)
from pull.kyc.models import KycApplication

log = logging.getLogger("pull.kyc")


# --- webhooks --------------------------------------------------------------------------------

Provider = Literal["persona", "checkr", "parallel_markets"]


@dataclass(frozen=True)
class ParsedEvent:
    provider: Provider
    event_id: str
    event_type: str
    subject_id: str  # inquiry, report or accreditation id
    reference_id: str | None  # our application id, when the vendor echoes it
    status: str | None  # passed | failed | review | expired | None (not a final outcome)


PERSONA_STATUS = {
    "inquiry.approved": "passed",
    "inquiry.completed": None,
    "inquiry.declined": "failed",
    "inquiry.failed": "failed",
    "inquiry.marked-for-review": "review",
    "inquiry.expired": "expired",
}


def _dig(body: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_event(provider: Provider, body: bytes) -> ParsedEvent:
    """The fields we act on, from a verified body; 422 when they are missing."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise Unprocessable("Webhook body is not JSON", code="INVALID_WEBHOOK") from None
    event_id = event_type = subject = None
    reference: str | None = None
    outcome: str | None = None
    if provider == "persona":
        event_id = _text(_dig(doc, "data", "id"))
        event_type = _text(_dig(doc, "data", "attributes", "name"))
        inquiry = _dig(doc, "data", "attributes", "payload", "data")
        subject = _text(_dig(inquiry, "id"))
        reference = _text(_dig(inquiry, "attributes", "reference-id"))
        outcome = PERSONA_STATUS.get(event_type or "")
    elif provider == "checkr":
        event_id = _text(_dig(doc, "id"))
        event_type = _text(_dig(doc, "type"))
        subject = _text(_dig(doc, "data", "object", "id"))
        report_status = _dig(doc, "data", "object", "status")
        if event_type == "report.completed":
            outcome = {"clear": "passed", "consider": "review"}.get(str(report_status))
        elif event_type in ("report.canceled", "report.suspended", "report.disputed"):
            outcome = "failed" if event_type == "report.canceled" else "review"
    else:
        event_id = _text(_dig(doc, "id"))
        event_type = _text(_dig(doc, "event"))
        subject = _text(_dig(doc, "data", "id"))
        if event_type == "accreditation_status_updated":
            outcome = {"current": "passed", "rejected": "failed", "expired": "expired"}.get(
                str(_dig(doc, "data", "status"))
            )
    if not event_id or not event_type or not subject:
        raise Unprocessable("Webhook lacks an event id, type or subject", code="INVALID_WEBHOOK")
    return ParsedEvent(provider, event_id, event_type[:100], subject[:100], reference, outcome)


_REF_COLUMN = {
    "persona": "inquiry_id",
    "checkr": "background_check_id",
    "parallel_markets": "accreditation_id",
}


async def ingest_webhook(
    *, session: AsyncSession, event: ParsedEvent, body: bytes, cipher: FieldCipher
) -> bool:
    """Store a verified event once and signal its workflow; True when it was a duplicate.

    An event about an inquiry, report or accreditation we do not know is refused (404) without
    being stored, so the vendor delivers it again later (it may race our own bookkeeping)."""
    app: KycApplication | None = None
    if event.reference_id:
        try:
            app = await repo.application(session, uuid.UUID(event.reference_id))
        except ValueError:
            app = None
        if app is not None and app.inquiry_id not in (None, event.subject_id):
            app = None
    if app is None:
        app = await repo.application_by_ref(session, _REF_COLUMN[event.provider], event.subject_id)
    if app is None:
        raise NotFound("Unknown verification subject", code="UNKNOWN_SUBJECT")
    stored = await repo.insert_webhook_event(
        session,
        {
            "provider": event.provider,
            "event_id": event.event_id[:200],
            "event_type": event.event_type,
            "subject_id": event.subject_id,
            "application_id": app.id,
            "status": event.status,
            "body_enc": cipher.encrypt(body.decode("utf-8", errors="replace")),
            "received_at": utcnow(),
        },
    )
    if not stored:
        return True
    if event.status is not None:
        signal_workflow_event(
            session,
            workflow_id=workflow_id(app.user_id),
            signal="provider_event",
            arg={
                "event_id": f"{event.provider}:{event.event_id}",
                "provider": event.provider,
                "subject_id": event.subject_id,
                "application_id": str(app.id),
                "status": event.status,
            },
        )
    await session.flush()
    return False
