"""Email: connect a mailbox (Nylas hosted auth), receive its webhooks, read, triage, search,
reply. The module's public API; it never commits (the request or activity does)."""

from __future__ import annotations

import contextlib
import json
import secrets
import uuid
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from pull.email import ingest, replies, repository
from pull.email.errors import (
    GrantRevokedError,
    InvalidCategory,
    InvalidOAuthState,
    MailboxNotConnected,
    MessageNotFound,
    OAuthFailed,
    ProviderUnavailable,
    ThreadNotFound,
)
from pull.email.models import EmailGrant, EmailMessage
from pull.email.providers.base import GrantRevoked, MailProvider, ProviderError
from pull.email.providers.llm import ReplyDrafter
from pull.email.schemas import (
    ConnectRead,
    DisconnectRead,
    DraftRead,
    MailboxRead,
    MessageDetail,
    MessageRead,
    SearchHit,
    SearchRead,
    Suggestions,
    ThreadRead,
)
from pull.email.textmodel import CATEGORIES, model, vector_literal
from pull.kit.crypto import FieldCipher, sha256_hex
from pull.kit.errors import BadRequest
from pull.kit.outbox import signal_workflow_event, start_workflow_event
from pull.kit.pagination import Page, clamp_limit, created_before, encode_cursor

STATE_TTL = 600
WORKFLOW = "EmailSyncWorkflow"
TRUNCATED_TYPES = {"message.created.truncated", "message.updated.truncated"}
REVOKING_TYPES = {"grant.deleted", "grant.expired"}


def sync_workflow_id(grant_ref: uuid.UUID | str) -> str:
    return f"email-sync-{grant_ref}"


def _state_key(state: str) -> str:
    return f"email:oauth:{sha256_hex(state)}"


# --- connect / disconnect -----------------------------------------------------------------


async def connect(
    *, redis: Redis, provider: MailProvider, user_id: uuid.UUID, login_hint: str | None
) -> ConnectRead:
    """The hosted-auth URL; `state` (single use, 10 minutes) ties the callback to the caller."""
    state = secrets.token_urlsafe(24)
    await redis.set(_state_key(state), str(user_id), ex=STATE_TTL)
    return ConnectRead(
        auth_url=provider.auth_url(state=state, login_hint=login_hint), expires_in=STATE_TTL
    )


async def callback(
    *,
    session: AsyncSession,
    redis: Redis,
    provider: MailProvider,
    cipher: FieldCipher,
    code: str,
    state: str,
    task_queue: str | None,
    temporal: Client | None,
) -> MailboxRead:
    """Exchange the code for a grant, store it encrypted, start its EmailSyncWorkflow."""
    raw = await redis.getdel(_state_key(state))
    if raw is None:
        raise InvalidOAuthState()
    user_id = uuid.UUID(raw.decode() if isinstance(raw, bytes) else str(raw))
    try:
        grant = await provider.exchange_code(code=code)
    except GrantRevoked as exc:
        raise OAuthFailed() from exc
    except ProviderError as exc:
        raise ProviderUnavailable() from exc
    old = await repository.grant_of_user(session, user_id)
    if old is not None:  # one mailbox per user: reconnecting replaces the old grant's data
        await repository.delete_grant(session, old.id)
        await stop_sync(temporal, old.id)
    existing = await repository.grant_by_hash(session, sha256_hex(grant.grant_id))
    if existing is not None:  # the same mailbox connected by another user before
        await repository.delete_grant(session, existing.id)
        await stop_sync(temporal, existing.id)
    row = EmailGrant(
        id=uuid.uuid4(),
        user_id=user_id,
        provider=grant.provider,
        grant_enc=cipher.encrypt(grant.grant_id),
        grant_hash=sha256_hex(grant.grant_id),
        email_enc=cipher.encrypt(grant.email),
        status="active",
        sync_state="backfilling",
        backfilled=0,
    )
    await repository.add_grant(session, row)
    start_workflow_event(
        session,
        workflow=WORKFLOW,
        workflow_id=sync_workflow_id(row.id),
        arg={"grant": str(row.id)},
        task_queue=task_queue or None,
    )
    return _mailbox(row, cipher, 0)


def _mailbox(row: EmailGrant, cipher: FieldCipher, messages: int) -> MailboxRead:
    return MailboxRead(
        email=cipher.decrypt(row.email_enc),
        provider=row.provider,
        status=row.status,
        sync_state=row.sync_state,
        messages=messages,
        connected_at=row.created_at,
    )


async def mailbox(*, session: AsyncSession, cipher: FieldCipher, user_id: uuid.UUID) -> MailboxRead:
    row = await _grant(session, user_id)
    return _mailbox(row, cipher, await repository.count_messages(session, row.id))


async def _grant(session: AsyncSession, user_id: uuid.UUID) -> EmailGrant:
    row = await repository.grant_of_user(session, user_id)
    if row is None:
        raise MailboxNotConnected()
    return row


async def stop_sync(temporal: Client | None, grant_ref: uuid.UUID) -> None:
    """Best effort: the workflow also stops by itself when it finds its grant gone."""
    if temporal is None:
        return
    with contextlib.suppress(Exception):
        await temporal.get_workflow_handle(sync_workflow_id(grant_ref)).terminate("disconnected")


async def disconnect(
    *,
    session: AsyncSession,
    provider: MailProvider,
    cipher: FieldCipher,
    user_id: uuid.UUID,
    temporal: Client | None,
) -> DisconnectRead:
    """Revoke the grant at Nylas and delete everything of it here."""
    row = await _grant(session, user_id)
    with contextlib.suppress(GrantRevoked):
        try:
            await provider.destroy_grant(grant_id=cipher.decrypt(row.grant_enc))
        except ProviderError as exc:
            raise ProviderUnavailable() from exc
    deleted = await repository.delete_grant(session, row.id)
    await stop_sync(temporal, row.id)
    return DisconnectRead(disconnected=True, messages_deleted=deleted)


# --- webhooks -----------------------------------------------------------------------------


def parse_notification(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise BadRequest("Webhook body is not JSON", code="INVALID_WEBHOOK") from exc
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("data"), dict)
        or not isinstance(event["data"].get("object"), dict)
    ):
        raise BadRequest("Not a Nylas notification", code="INVALID_WEBHOOK")
    return event


async def ingest_notification(
    *, session: AsyncSession, cipher: FieldCipher, event: dict[str, Any]
) -> str:
    """Apply one verified notification: `applied`, `duplicate` (a redelivery, no effect) or
    `ignored` (not about a mailbox we hold)."""
    if not await repository.record_webhook(
        session, event_id=event["id"][:128], type=event["type"][:64]
    ):
        return "duplicate"
    kind: str = event["type"]
    obj: dict[str, Any] = event["data"]["object"]
    grant_id = obj.get("grant_id")
    if not isinstance(grant_id, str):
        return "ignored"
    grant = await repository.grant_by_hash(session, sha256_hex(grant_id))
    if grant is None or grant.status != "active":
        return "ignored"  # not (or no longer) ours: acknowledged, ignored
    wf = sync_workflow_id(grant.id)
    if kind in REVOKING_TYPES:
        await repository.set_grant(session, grant.id, status="revoked", sync_state="stopped")
        signal_workflow_event(session, workflow_id=wf, signal="revoked", arg={"type": kind})
        return "applied"
    if not kind.startswith("message.") or not isinstance(obj.get("id"), str):
        return "ignored"
    if kind in TRUNCATED_TYPES:
        existing = await repository.message_by_nylas_id(session, grant.id, obj["id"])
        if existing is None or existing.body_pending:
            await ingest.store_message(
                session, grant=grant, obj=obj, cipher=cipher, body_pending=True
            )
        signal_workflow_event(
            session, workflow_id=wf, signal="fetch", arg={"message_id": obj["id"]}
        )
        return "applied"
    if kind == "message.updated" and "body" not in obj:
        await repository.update_flags(session, grant.id, obj["id"], ingest.flag_changes(obj))
        return "applied"
    if kind in ("message.created", "message.updated"):
        await ingest.store_message(session, grant=grant, obj=obj, cipher=cipher)
    return "applied"


# --- reading ------------------------------------------------------------------------------


def _read(m: EmailMessage, cipher: FieldCipher) -> MessageRead:
    return MessageRead(
        id=m.id,
        thread_id=m.thread_id,
        subject=m.subject,
        from_name=m.from_name,
        from_email=m.from_email,
        received_at=m.received_at,
        unread=m.unread,
        starred=m.starred,
        archived="INBOX" not in (m.folders or []) and "SENT" not in (m.folders or []),
        category=m.category,
        priority=m.priority,
        snippet=cipher.decrypt(m.snippet_enc) if m.snippet_enc else "",
        created_at=m.created_at,
    )


def _detail(m: EmailMessage, cipher: FieldCipher) -> MessageDetail:
    base = _read(m, cipher)
    return MessageDetail(
        **base.model_dump(),
        body=cipher.decrypt(m.body_enc) if m.body_enc else None,
        folders=[str(f) for f in (m.folders or [])],
    )


def _received_cursor(m: EmailMessage) -> str:
    return encode_cursor({"t": m.received_at.isoformat(), "id": str(m.id)})


async def list_messages(
    *,
    session: AsyncSession,
    cipher: FieldCipher,
    user_id: uuid.UUID,
    category: str | None,
    cursor: str | None,
    limit: int | None,
) -> Page[MessageRead]:
    if category is not None and category not in CATEGORIES:
        raise InvalidCategory(details={"allowed": list(CATEGORIES)})
    size = clamp_limit(limit)
    rows = await repository.list_messages(
        session,
        user_id=user_id,
        category=category,
        before=created_before(cursor),
        limit=size + 1,
    )
    nxt = _received_cursor(rows[size - 1]) if len(rows) > size else None
    return Page(items=[_read(m, cipher) for m in rows[:size]], cursor=nxt)


async def message(
    *, session: AsyncSession, cipher: FieldCipher, user_id: uuid.UUID, message_id: uuid.UUID
) -> MessageDetail:
    return _detail(await _message(session, user_id, message_id), cipher)


async def _message(
    session: AsyncSession, user_id: uuid.UUID, message_id: uuid.UUID
) -> EmailMessage:
    m = await repository.message_of_user(session, user_id, message_id)
    if m is None:
        raise MessageNotFound()
    return m


async def thread(
    *, session: AsyncSession, cipher: FieldCipher, user_id: uuid.UUID, thread_id: str
) -> ThreadRead:
    rows = await repository.thread(session, user_id=user_id, thread_id=thread_id)
    if not rows:
        raise ThreadNotFound()
    return ThreadRead(thread_id=thread_id, messages=[_detail(m, cipher) for m in rows])


async def search(
    *,
    session: AsyncSession,
    cipher: FieldCipher,
    user_id: uuid.UUID,
    q: str,
    limit: int | None,
) -> SearchRead:
    text = q.strip()
    if not text:
        raise BadRequest("q must not be empty", code="INVALID_QUERY")
    vec = vector_literal(model().embed(subject=text, body=text))
    rows = await repository.search(
        session, user_id=user_id, vector=vec, text=text, limit=min(clamp_limit(limit), 50)
    )
    return SearchRead(
        items=[
            SearchHit(message=_read(m, cipher), score=s, semantic_rank=sr, keyword_rank=kr)
            for m, s, sr, kr in rows
        ]
    )


# --- acting -------------------------------------------------------------------------------


async def suggestions(
    *, session: AsyncSession, user_id: uuid.UUID, message_id: uuid.UUID
) -> Suggestions:
    m = await _message(session, user_id, message_id)
    s = replies.suggest(
        category=m.category,
        intent=m.intent,
        reply_probability=m.reply_probability,
        from_email=m.from_email,
        sent_by_me="SENT" in (m.folders or []),
    )
    return Suggestions(
        suggest=s.suggest,
        reply_probability=round(m.reply_probability, 4),
        intent=m.intent,
        replies=s.replies,
    )


async def draft(
    *,
    session: AsyncSession,
    drafter: ReplyDrafter,
    cipher: FieldCipher,
    user_id: uuid.UUID,
    message_id: uuid.UUID,
) -> DraftRead:
    """A full reply drafted by the LLM provider (the caller edits it, then sends with reply)."""
    m = await _message(session, user_id, message_id)
    body = cipher.decrypt(m.body_enc) if m.body_enc else ""
    try:
        text = await drafter.draft(
            subject=m.subject, body=body, sender_name=m.from_name, intent=m.intent
        )
    except ProviderError as exc:
        raise ProviderUnavailable("The reply drafter did not answer; try again") from exc
    return DraftRead(draft=text, provider=drafter.name)


async def _active_grant(session: AsyncSession, user_id: uuid.UUID) -> EmailGrant:
    grant = await _grant(session, user_id)
    if grant.status != "active":
        raise GrantRevokedError()
    return grant


async def update_message(
    *,
    session: AsyncSession,
    provider: MailProvider,
    cipher: FieldCipher,
    user_id: uuid.UUID,
    message_id: uuid.UUID,
    unread: bool | None,
    archived: bool | None,
) -> MessageDetail:
    """Mark read/unread, archive/unarchive: written to Nylas first, then here."""
    m = await _message(session, user_id, message_id)
    grant = await _active_grant(session, user_id)
    folders: list[str] | None = None
    if archived is not None:
        current = [str(f) for f in (m.folders or [])]
        folders = (
            [f for f in current if f != "INBOX"]
            if archived
            else (current if "INBOX" in current else ["INBOX", *current])
        )
    try:
        await provider.update_message(
            grant_id=cipher.decrypt(grant.grant_enc),
            message_id=m.nylas_id,
            unread=unread,
            folders=folders,
        )
    except GrantRevoked as exc:
        raise GrantRevokedError() from exc
    except ProviderError as exc:
        raise ProviderUnavailable() from exc
    changes: dict[str, Any] = {}
    if unread is not None:
        changes["unread"] = unread
    if folders is not None:
        changes["folders"] = folders
    if changes:
        await repository.update_flags(session, grant.id, m.nylas_id, changes)
        await session.refresh(m)
    return _detail(m, cipher)


async def reply(
    *,
    session: AsyncSession,
    provider: MailProvider,
    cipher: FieldCipher,
    user_id: uuid.UUID,
    message_id: uuid.UUID,
    body: str,
) -> MessageDetail:
    """Send a reply through Nylas (threaded by reply_to_message_id) and store the sent copy."""
    m = await _message(session, user_id, message_id)
    grant = await _active_grant(session, user_id)
    subject = m.subject if m.subject.lower().startswith("re:") else f"Re: {m.subject}"
    try:
        sent = await provider.send_message(
            grant_id=cipher.decrypt(grant.grant_enc),
            to=[{"name": m.from_name, "email": m.from_email}],
            subject=subject,
            body=body,
            reply_to_message_id=m.nylas_id,
        )
    except GrantRevoked as exc:
        raise GrantRevokedError() from exc
    except ProviderError as exc:
        raise ProviderUnavailable() from exc
    sent.setdefault("thread_id", m.thread_id)
    sent.setdefault("folders", ["SENT"])
    sent_id = await ingest.store_message(
        session, grant=grant, obj=sent, cipher=cipher, source="sent"
    )
    return _detail(await _message(session, user_id, sent_id), cipher)
