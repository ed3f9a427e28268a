"""One path from a Nylas message object to a stored, triaged, indexed row (backfill, webhook
and fetch all use it). The body is encrypted before it reaches the session; nothing here logs
message content."""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.email import repository
from pull.email.metrics import MESSAGES
from pull.email.models import EmailGrant
from pull.email.providers.base import NylasMessage
from pull.email.textmodel import model, vector_literal
from pull.kit.crypto import FieldCipher

_TAG = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.S | re.I)
_BREAK = re.compile(r"<\s*(br|/p|/div|/li|/tr)[^>]*>", re.I)
_SPACE = re.compile(r"[ \t\r\f\v]+")


def html_to_text(body: str) -> str:
    text = _BREAK.sub("\n", body)
    text = html.unescape(_TAG.sub("", text))
    lines = (_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _first_party(obj: NylasMessage, key: str) -> tuple[str, str]:
    people = obj.get(key) or []
    if people and isinstance(people[0], dict):
        return str(people[0].get("name") or ""), str(people[0].get("email") or "")
    return "", ""


def _received(obj: NylasMessage) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(int(obj.get("date") or 0), dt.UTC)
    except (TypeError, ValueError, OverflowError):
        return dt.datetime.now(dt.UTC)


async def store_message(
    session: AsyncSession,
    *,
    grant: EmailGrant,
    obj: NylasMessage,
    cipher: FieldCipher,
    body_pending: bool = False,
    source: str = "webhook",
) -> uuid.UUID:
    """Triage, embed, encrypt and upsert one message."""
    MESSAGES.labels(source).inc()
    subject = str(obj.get("subject") or "")
    from_name, from_email = _first_party(obj, "from")
    raw_body = obj.get("body")
    text = html_to_text(raw_body) if isinstance(raw_body, str) else ""
    snippet = str(obj.get("snippet") or text[:160])
    if not text:
        text = snippet
    m = model()
    idx, vals = m.vectorize(subject, text, from_email)
    triage = m.triage(subject=subject, body=text, sender=from_email)
    folders = [str(f) for f in (obj.get("folders") or [])]
    values: dict[str, Any] = {
        "grant_ref": grant.id,
        "user_id": grant.user_id,
        "nylas_id": str(obj["id"]),
        "thread_id": str(obj.get("thread_id") or obj["id"]),
        "subject": subject,
        "from_name": from_name,
        "from_email": from_email,
        "to_json": [
            {"name": str(p.get("name") or ""), "email": str(p.get("email") or "")}
            for p in (obj.get("to") or [])
            if isinstance(p, dict)
        ],
        "folders": folders,
        "received_at": _received(obj),
        "unread": bool(obj.get("unread", False)),
        "starred": bool(obj.get("starred", False)),
        "body_enc": None if body_pending else cipher.encrypt(text),
        "snippet_enc": cipher.encrypt(snippet[:200]),
        "body_pending": body_pending,
        "category": "primary" if "SENT" in folders else triage.category,
        "priority": triage.priority,
        "reply_probability": triage.reply_probability,
        "intent": triage.intent,
    }
    search_text = f"{subject} {from_name} {from_email} {text}"[:200_000]
    return await repository.upsert_message(
        session,
        values,
        search_text=search_text,
        embedding=vector_literal(m.embed_vector(idx, vals)),
    )


def flag_changes(obj: NylasMessage) -> dict[str, Any]:
    """The flag fields a `message.updated` notification carries."""
    values: dict[str, Any] = {}
    if "unread" in obj:
        values["unread"] = bool(obj["unread"])
    if "starred" in obj:
        values["starred"] = bool(obj["starred"])
    if "folders" in obj and isinstance(obj["folders"], list):
        values["folders"] = [str(f) for f in obj["folders"]]
    return values
