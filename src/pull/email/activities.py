"""Activities of EmailSyncWorkflow: backfill one page, fetch one (truncated) message, read the
grant's state. Each commits its own transaction; all are idempotent (upsert by message id)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from temporalio import activity

from pull.email import ingest, repository
from pull.email.providers.base import GrantRevoked, MailProvider, ProviderError
from pull.email.providers.factory import make_provider
from pull.kit.crypto import FieldCipher
from pull.kit.runtime import worker_runtime

PAGE_SIZE = 200  # Nylas' maximum `limit` for GET /v3/grants/{id}/messages


@dataclass
class BackfillInput:
    grant: str
    page_token: str | None = None


@dataclass
class BackfillResult:
    state: str  # active | revoked | gone
    stored: int = 0
    next_page_token: str | None = None


@dataclass
class FetchInput:
    grant: str
    message_id: str


@dataclass
class GrantInput:
    grant: str
    sync_state: str | None = None


@lru_cache(maxsize=1)
def _provider() -> MailProvider:
    return make_provider(worker_runtime().settings)


@lru_cache(maxsize=1)
def _cipher() -> FieldCipher:
    return FieldCipher(worker_runtime().settings.field_encryption_keys)


async def _revoke(grant_ref: uuid.UUID) -> None:
    async with worker_runtime().sessionmaker() as session, session.begin():
        await repository.set_grant(session, grant_ref, status="revoked", sync_state="stopped")


@activity.defn(name="email_backfill_page")
async def email_backfill_page(data: BackfillInput) -> BackfillResult:
    grant_ref = uuid.UUID(data.grant)
    cipher = _cipher()
    async with worker_runtime().sessionmaker() as session:
        grant = await repository.grant_by_id(session, grant_ref)
        if grant is None:
            return BackfillResult(state="gone")
        if grant.status != "active":
            return BackfillResult(state=grant.status)
        grant_id = cipher.decrypt(grant.grant_enc)
    try:
        page = await _provider().list_messages(
            grant_id=grant_id, limit=PAGE_SIZE, page_token=data.page_token
        )
    except GrantRevoked:
        await _revoke(grant_ref)
        return BackfillResult(state="revoked")
    except ProviderError as exc:
        raise RuntimeError(f"mail provider failed: {exc}") from exc  # retried by Temporal
    async with worker_runtime().sessionmaker() as session, session.begin():
        grant = await repository.grant_by_id(session, grant_ref)
        if grant is None:
            return BackfillResult(state="gone")
        for obj in page.messages:
            await ingest.store_message(
                session, grant=grant, obj=obj, cipher=cipher, source="backfill"
            )
        await repository.add_backfilled(session, grant_ref, len(page.messages))
        if page.next_cursor is None:
            await repository.set_grant(session, grant_ref, sync_state="live")
    activity.heartbeat(len(page.messages))
    return BackfillResult(
        state="active", stored=len(page.messages), next_page_token=page.next_cursor
    )


@activity.defn(name="email_fetch_message")
async def email_fetch_message(data: FetchInput) -> str:
    """A `.truncated` notification has no body: fetch the whole message from Nylas."""
    grant_ref = uuid.UUID(data.grant)
    cipher = _cipher()
    async with worker_runtime().sessionmaker() as session:
        grant = await repository.grant_by_id(session, grant_ref)
        if grant is None:
            return "gone"
        if grant.status != "active":
            return grant.status
        grant_id = cipher.decrypt(grant.grant_enc)
    try:
        obj = await _provider().get_message(grant_id=grant_id, message_id=data.message_id)
    except GrantRevoked:
        await _revoke(grant_ref)
        return "revoked"
    except KeyError:
        return "active"  # deleted at the provider meanwhile: nothing to fetch
    except ProviderError as exc:
        raise RuntimeError(f"mail provider failed: {exc}") from exc
    async with worker_runtime().sessionmaker() as session, session.begin():
        grant = await repository.grant_by_id(session, grant_ref)
        if grant is None:
            return "gone"
        await ingest.store_message(session, grant=grant, obj=obj, cipher=cipher, source="fetch")
    return "active"


@activity.defn(name="email_grant_state")
async def email_grant_state(data: GrantInput) -> str:
    """The grant's status (`gone` once disconnected); sets sync_state when asked."""
    grant_ref = uuid.UUID(data.grant)
    async with worker_runtime().sessionmaker() as session, session.begin():
        grant = await repository.grant_by_id(session, grant_ref)
        if grant is None:
            return "gone"
        if data.sync_state is not None:
            await repository.set_grant(session, grant_ref, sync_state=data.sync_state)
        return grant.status


ACTIVITIES: list[Callable[..., Any]] = [email_backfill_page, email_fetch_message, email_grant_state]
