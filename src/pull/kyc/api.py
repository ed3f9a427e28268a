"""KYC HTTP endpoints: the owner's verification, admin manual review, provider webhooks.

Every user endpoint works on the caller's own data only (no user id in the path); admin
endpoints need the admin role; webhooks are authenticated by the vendor's signature alone.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status

from pull.config import Settings
from pull.identity.deps import AdminUser, CurrentUser
from pull.kit.crypto import FieldCipher
from pull.kit.db import SessionDep
from pull.kit.pagination import Page
from pull.kit.ratelimit import general, webhook_routes
from pull.kyc import applications, webhooks
from pull.kyc.providers import signing
from pull.kyc.schemas import (
    ApplicationRead,
    ApproveRequest,
    KycStatusRead,
    LimitsRead,
    RejectRequest,
    ReviewRead,
    StartRequest,
    WebhookAck,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    403: {"description": "Not allowed"},
    429: {"description": "Rate limited"},
}

router = APIRouter(
    prefix="/api/v1/kyc", tags=["kyc"], responses=_ERRORS, dependencies=[Depends(general)]
)
admin_router = APIRouter(
    prefix="/api/admin/kyc",
    tags=["kyc admin"],
    responses=_ERRORS,
    dependencies=[Depends(general)],
)
webhooks_router = APIRouter(
    prefix="/webhooks", tags=["webhooks"], dependencies=[Depends(webhook_routes)]
)


def kyc_cipher(request: Request) -> FieldCipher:
    cipher: FieldCipher | None = getattr(request.app.state, "kyc_cipher", None)
    if cipher is None:
        cipher = FieldCipher(request.app.state.settings.field_encryption_keys)
        request.app.state.kyc_cipher = cipher
    return cipher


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Cipher = Annotated[FieldCipher, Depends(kyc_cipher)]
AppSettings = Annotated[Settings, Depends(app_settings)]


# --- the owner -------------------------------------------------------------------------------


@router.post(
    "/start",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start verifying for a tier",
    description="Starts KycWorkflow. The Persona session token appears in `GET /status` "
    "(`next_action: complete_identity_verification`) once the inquiry exists.",
)
async def start(
    body: StartRequest,
    user: CurrentUser,
    session: SessionDep,
    cipher: Cipher,
    settings: AppSettings,
) -> KycStatusRead:
    return await applications.start(
        session=session, user_id=user.id, data=body, cipher=cipher, settings=settings
    )


@router.get("/status", summary="Steps, progress, current and target tier, next action")
async def get_status(user: CurrentUser, session: SessionDep, cipher: Cipher) -> KycStatusRead:
    return await applications.status(session=session, user_id=user.id, cipher=cipher)


@router.get("/limits", summary="The caller's limits, used and remaining now")
async def get_limits(user: CurrentUser, session: SessionDep) -> LimitsRead:
    return await applications.limits(session=session, user_id=user.id)


@router.post("/cancel", summary="Cancel the verification in progress")
async def cancel(user: CurrentUser, session: SessionDep, cipher: Cipher) -> KycStatusRead:
    return await applications.cancel(session=session, user_id=user.id, cipher=cipher)


@router.post(
    "/retry",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Try a declined, expired or cancelled verification again",
)
async def retry(
    user: CurrentUser, session: SessionDep, cipher: Cipher, settings: AppSettings
) -> KycStatusRead:
    return await applications.retry(
        session=session, user_id=user.id, cipher=cipher, settings=settings
    )


# --- admins ----------------------------------------------------------------------------------


@admin_router.get("/reviews", summary="Verifications waiting for manual review (masked PII)")
async def reviews(
    admin: AdminUser,
    session: SessionDep,
    cipher: Cipher,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int | None, Query()] = None,
) -> Page[ReviewRead]:
    return await applications.reviews(session=session, cipher=cipher, cursor=cursor, limit=limit)


@admin_router.post("/{user_id}/approve", summary="Approve a reviewed verification at a tier")
async def approve(
    user_id: uuid.UUID, body: ApproveRequest, admin: AdminUser, session: SessionDep, cipher: Cipher
) -> ApplicationRead:
    return await applications.approve(
        session=session,
        user_id=user_id,
        tier=body.tier,
        note=body.note,
        actor_id=admin.id,
        cipher=cipher,
    )


@admin_router.post("/{user_id}/reject", summary="Decline a reviewed verification")
async def reject(
    user_id: uuid.UUID, body: RejectRequest, admin: AdminUser, session: SessionDep, cipher: Cipher
) -> ApplicationRead:
    return await applications.reject(
        session=session, user_id=user_id, reason=body.reason, actor_id=admin.id, cipher=cipher
    )


# --- provider webhooks -----------------------------------------------------------------------

_DEV_SECRETS = {
    "dev-persona-webhook-secret",
    "dev-checkr-webhook-secret",
    "dev-parallel-markets-webhook-secret",
}


def _secret(settings: Settings, value: str) -> str:
    """A deployed environment never accepts webhooks signed with a development secret."""
    if settings.is_deployed and value in _DEV_SECRETS:
        raise signing.InvalidSignature("Webhook secret is not configured")
    return value


async def _ingest(
    provider: webhooks.Provider, body: bytes, session: SessionDep, cipher: FieldCipher
) -> WebhookAck:
    event = webhooks.parse_event(provider, body)
    duplicate = await webhooks.ingest_webhook(
        session=session, event=event, body=body, cipher=cipher
    )
    return WebhookAck(received=True, duplicate=duplicate)


@webhooks_router.post("/persona", summary="Persona events (Persona-Signature)")
async def persona_webhook(
    request: Request, session: SessionDep, cipher: Cipher, settings: AppSettings
) -> WebhookAck:
    body = await request.body()
    signing.verify_persona(
        _secret(settings, settings.persona_webhook_secret),
        request.headers.get(signing.PERSONA_HEADER),
        body,
        tolerance=settings.kyc_webhook_tolerance_seconds,
    )
    return await _ingest("persona", body, session, cipher)


@webhooks_router.post("/checkr", summary="Checkr events (X-Checkr-Signature)")
async def checkr_webhook(
    request: Request, session: SessionDep, cipher: Cipher, settings: AppSettings
) -> WebhookAck:
    body = await request.body()
    signing.verify_hex(
        _secret(settings, settings.checkr_webhook_secret),
        request.headers.get(signing.CHECKR_HEADER),
        body,
    )
    return await _ingest("checkr", body, session, cipher)


@webhooks_router.post("/parallel-markets", summary="Parallel Markets events (X-Parallel-Signature)")
async def parallel_markets_webhook(
    request: Request, session: SessionDep, cipher: Cipher, settings: AppSettings
) -> WebhookAck:
    body = await request.body()
    signing.verify_hex(
        _secret(settings, settings.parallel_markets_webhook_secret),
        request.headers.get(signing.PARALLEL_HEADER),
        body,
    )
    return await _ingest("parallel_markets", body, session, cipher)


def routers() -> list[APIRouter]:
    return [router, admin_router, webhooks_router]
