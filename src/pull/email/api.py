"""Email HTTP endpoints: the caller's own mailbox only (no user id in any path), the Nylas
webhook (authenticated by X-Nylas-Signature alone) and the sandbox's hosted-auth page."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import PlainTextResponse, RedirectResponse
from redis.asyncio import Redis
from temporalio.client import Client

from pull.config import Settings
from pull.email import service
from pull.email.errors import OAuthFailed
from pull.email.metrics import WEBHOOKS
from pull.email.providers import wire
from pull.email.providers.base import MailProvider
from pull.email.providers.factory import make_provider
from pull.email.providers.llm import ReplyDrafter, make_drafter
from pull.email.providers.sandbox import NylasSandbox
from pull.email.schemas import (
    ConnectRead,
    ConnectRequest,
    DisconnectRead,
    DraftRead,
    MailboxRead,
    MessageDetail,
    MessageRead,
    MessageUpdate,
    ReplyRequest,
    SearchRead,
    Suggestions,
    ThreadRead,
    WebhookAck,
)
from pull.identity.deps import CurrentUser
from pull.kit.crypto import FieldCipher
from pull.kit.db import SessionDep
from pull.kit.errors import NotFound
from pull.kit.pagination import Page
from pull.kit.ratelimit import general, webhook_routes

DEV_WEBHOOK_SECRET = "dev-nylas-webhook-secret"  # noqa: S105 (the development default)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    404: {"description": "Not found"},
    429: {"description": "Rate limited"},
}

router = APIRouter(
    prefix="/api/v1/email", tags=["email"], responses=_ERRORS, dependencies=[Depends(general)]
)
webhooks_router = APIRouter(
    prefix="/webhooks", tags=["webhooks"], dependencies=[Depends(webhook_routes)]
)
sandbox_router = APIRouter(prefix="/sandbox/nylas", tags=["sandbox"], include_in_schema=False)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def email_provider(request: Request) -> MailProvider:
    provider: MailProvider | None = getattr(request.app.state, "email_provider", None)
    if provider is None:
        provider = make_provider(_settings(request))
        request.app.state.email_provider = provider
    return provider


def email_cipher(request: Request) -> FieldCipher:
    cipher: FieldCipher | None = getattr(request.app.state, "email_cipher", None)
    if cipher is None:
        cipher = FieldCipher(_settings(request).field_encryption_keys)
        request.app.state.email_cipher = cipher
    return cipher


def reply_drafter(request: Request) -> ReplyDrafter:
    drafter: ReplyDrafter | None = getattr(request.app.state, "email_drafter", None)
    if drafter is None:
        drafter = make_drafter(_settings(request))
        request.app.state.email_drafter = drafter
    return drafter


def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def _temporal(request: Request) -> Client | None:
    try:
        client: Client = await asyncio.wait_for(request.app.state.temporal.get(), timeout=3)
    except Exception:
        return None
    return client


Provider = Annotated[MailProvider, Depends(email_provider)]
Cipher = Annotated[FieldCipher, Depends(email_cipher)]
RedisDep = Annotated[Redis, Depends(_redis)]
AppSettings = Annotated[Settings, Depends(_settings)]


@router.post("/connect", summary="Start connecting a mailbox (returns the hosted-auth URL)")
async def connect(
    body: ConnectRequest, user: CurrentUser, provider: Provider, redis: RedisDep
) -> ConnectRead:
    return await service.connect(
        redis=redis, provider=provider, user_id=user.id, login_hint=body.login_hint
    )


@router.get(
    "/callback",
    summary="Hosted-auth redirect target: exchanges the code for a grant, starts the sync",
    description="Called by the user's browser with Nylas' `code` and our `state`; the state "
    "identifies the user who asked to connect.",
)
async def callback(
    request: Request,
    session: SessionDep,
    provider: Provider,
    cipher: Cipher,
    redis: RedisDep,
    settings: AppSettings,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> MailboxRead:
    if error or not code or not state:
        raise OAuthFailed(details={"error": error} if error else None)
    return await service.callback(
        session=session,
        redis=redis,
        provider=provider,
        cipher=cipher,
        code=code,
        state=state,
        task_queue=settings.email_task_queue or None,
        temporal=await _temporal(request),
    )


@router.get("/mailbox", summary="The connected mailbox and its sync state")
async def get_mailbox(user: CurrentUser, session: SessionDep, cipher: Cipher) -> MailboxRead:
    return await service.mailbox(session=session, cipher=cipher, user_id=user.id)


@router.delete("/mailbox", summary="Disconnect: revoke the grant and delete all its mail here")
async def disconnect(
    request: Request, user: CurrentUser, session: SessionDep, provider: Provider, cipher: Cipher
) -> DisconnectRead:
    return await service.disconnect(
        session=session,
        provider=provider,
        cipher=cipher,
        user_id=user.id,
        temporal=await _temporal(request),
    )


@router.get("/messages", summary="The caller's messages, newest first, by category")
async def list_messages(
    user: CurrentUser,
    session: SessionDep,
    cipher: Cipher,
    category: Annotated[str | None, Query(max_length=32)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int | None, Query()] = None,
) -> Page[MessageRead]:
    return await service.list_messages(
        session=session,
        cipher=cipher,
        user_id=user.id,
        category=category,
        cursor=cursor,
        limit=limit,
    )


@router.get("/search", summary="Hybrid search: semantic (pgvector HNSW) + full text, fused")
async def search(
    user: CurrentUser,
    session: SessionDep,
    cipher: Cipher,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    limit: Annotated[int | None, Query()] = None,
) -> SearchRead:
    return await service.search(session=session, cipher=cipher, user_id=user.id, q=q, limit=limit)


@router.get("/messages/{message_id}", summary="One message with its body")
async def get_message(
    message_id: uuid.UUID, user: CurrentUser, session: SessionDep, cipher: Cipher
) -> MessageDetail:
    return await service.message(
        session=session, cipher=cipher, user_id=user.id, message_id=message_id
    )


@router.patch("/messages/{message_id}", summary="Mark read/unread, archive (written to Nylas)")
async def update_message(
    message_id: uuid.UUID,
    body: MessageUpdate,
    user: CurrentUser,
    session: SessionDep,
    provider: Provider,
    cipher: Cipher,
) -> MessageDetail:
    return await service.update_message(
        session=session,
        provider=provider,
        cipher=cipher,
        user_id=user.id,
        message_id=message_id,
        unread=body.unread,
        archived=body.archived,
    )


@router.get("/messages/{message_id}/suggestions", summary="Smart replies (up to three)")
async def suggestions(message_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Suggestions:
    return await service.suggestions(session=session, user_id=user.id, message_id=message_id)


@router.post(
    "/messages/{message_id}/reply",
    status_code=status.HTTP_201_CREATED,
    summary="Reply to a message (sent through Nylas)",
)
async def reply(
    message_id: uuid.UUID,
    body: ReplyRequest,
    user: CurrentUser,
    session: SessionDep,
    provider: Provider,
    cipher: Cipher,
) -> MessageDetail:
    return await service.reply(
        session=session,
        provider=provider,
        cipher=cipher,
        user_id=user.id,
        message_id=message_id,
        body=body.body,
    )


@router.post(
    "/messages/{message_id}/draft",
    summary="Draft a full reply with the LLM provider (Anthropic when configured)",
)
async def draft(
    message_id: uuid.UUID,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    cipher: Cipher,
) -> DraftRead:
    return await service.draft(
        session=session,
        drafter=reply_drafter(request),
        cipher=cipher,
        user_id=user.id,
        message_id=message_id,
    )


@router.get("/threads/{thread_id}", summary="A conversation, oldest first")
async def get_thread(
    thread_id: str,
    user: CurrentUser,
    session: SessionDep,
    cipher: Cipher,
) -> ThreadRead:
    return await service.thread(
        session=session, cipher=cipher, user_id=user.id, thread_id=thread_id
    )


# --- Nylas webhooks -----------------------------------------------------------------------


@webhooks_router.get(
    "/nylas",
    summary="Nylas' endpoint check: echo `challenge` as plain text",
    response_class=PlainTextResponse,
)
async def nylas_challenge(
    challenge: Annotated[str, Query(min_length=1, max_length=512)],
) -> PlainTextResponse:
    return PlainTextResponse(challenge)


@webhooks_router.post("/nylas", summary="Nylas notifications (X-Nylas-Signature)")
async def nylas_webhook(
    request: Request, session: SessionDep, cipher: Cipher, settings: AppSettings
) -> WebhookAck:
    body = await request.body()
    secret = settings.nylas_webhook_secret
    if settings.is_deployed and secret == DEV_WEBHOOK_SECRET:
        raise wire.InvalidSignature("Webhook secret is not configured")
    try:
        wire.verify(secret, request.headers.get(wire.SIGNATURE_HEADER), body)
        event = service.parse_notification(body)
    except Exception:
        WEBHOOKS.labels("rejected").inc()
        raise
    outcome = await service.ingest_notification(session=session, cipher=cipher, event=event)
    WEBHOOKS.labels(outcome).inc()
    return WebhookAck(received=True, duplicate=outcome == "duplicate")


# --- the sandbox's hosted-auth page -------------------------------------------------------


@sandbox_router.get("/v3/connect/auth")
async def sandbox_authorize(
    request: Request,
    redirect_uri: Annotated[str, Query(max_length=2048)],
    state: Annotated[str, Query(max_length=512)],
    login_hint: Annotated[str | None, Query(max_length=320)] = None,
) -> RedirectResponse:
    """The consent screen of Nylas' sandbox: the user always agrees."""
    provider = email_provider(request)
    if not isinstance(provider, NylasSandbox) or redirect_uri != provider.callback_uri:
        raise NotFound()
    code = NylasSandbox.issue_code(login_hint)
    sep = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{sep}code={code}&state={state}", status_code=302)


def routers() -> list[APIRouter]:
    return [router, webhooks_router, sandbox_router]
