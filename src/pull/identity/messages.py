"""The sandbox message box: the mail and texts PULL sent to the caller while its vendors are
sandboxes, so a client that speaks only HTTP can read its verification link and SMS code.

Open only in development and test, and only while mail goes to the table sender (no SMTP_HOST)
and texts to the SMS sandbox (no Twilio credentials); 404 otherwise.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.identity import repository as repo
from pull.identity.providers import twilio_configured
from pull.identity.schemas import SandboxMessage, SandboxMessagePage
from pull.kit.errors import BadRequest, NotFound
from pull.kit.pagination import clamp_limit, decode_cursor, encode_cursor

CURSOR_ERROR = "Invalid cursor"


def box_open(settings: Settings) -> bool:
    return not settings.is_deployed and not settings.smtp_host and not twilio_configured(settings)


def _before(cursor: str | None) -> tuple[dt.datetime, str, int] | None:
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    try:
        at = dt.datetime.fromisoformat(str(raw["t"]))
        channel = str(raw["c"])
        ident = int(raw["i"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest(CURSOR_ERROR, code="INVALID_CURSOR") from exc
    if at.tzinfo is None or channel not in ("email", "sms") or not 0 < ident < 2**63:
        raise BadRequest(CURSOR_ERROR, code="INVALID_CURSOR")
    return at, channel, ident


async def sandbox_messages(
    *,
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    cursor: str | None,
    limit: int | None,
) -> SandboxMessagePage:
    if not box_open(settings):
        raise NotFound(
            "The sandbox message box exists only while mail and SMS are sandboxes",
            code="NOT_FOUND",
        )
    size = clamp_limit(limit)
    before = _before(cursor)
    user = await repo.user_by_id(session, user_id)
    if user is None:
        raise NotFound("User not found", code="USER_NOT_FOUND")
    rows = await repo.sandbox_messages(
        session, email=user.email, phone=user.phone, before=before, limit=size + 1
    )
    items = [
        SandboxMessage.model_validate(
            {
                "id": f"{r.channel}-{r.id}",
                "channel": r.channel,
                "to": r.to,
                "subject": r.subject,
                "body": r.body,
                "created_at": r.created_at,
            }
        )
        for r in rows[:size]
    ]
    next_cursor = None
    if len(rows) > size:
        last = rows[size - 1]
        next_cursor = encode_cursor(
            {"t": last.created_at.isoformat(), "c": last.channel, "i": last.id}
        )
    return SandboxMessagePage(items=items, cursor=next_cursor)
