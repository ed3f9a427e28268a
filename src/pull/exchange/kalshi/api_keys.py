"""Trade API key management (Kalshi's `/api_keys`)."""

from __future__ import annotations

import uuid

import anyio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange.kalshi.auth import Reader, Signed, charge_write
from pull.exchange.kalshi.schemas import (
    ApiKey,
    CreateApiKeyRequest,
    CreateApiKeyResponse,
    GenerateApiKeyRequest,
    GenerateApiKeyResponse,
    GetApiKeysResponse,
)
from pull.exchange.kalshi.units import WRITE_COST
from pull.identity import api_keys as identity_api_keys
from pull.identity.deps import request_meta
from pull.identity.errors import must_persist
from pull.identity.schemas import ApiKeyCreate, AuthUser
from pull.kit.db import SessionDep
from pull.kit.errors import NotFound

# --- API keys ----------------------------------------------------------------------------------

api_keys = APIRouter(prefix="/api_keys", tags=["api keys"])


@api_keys.get("", summary="The caller's API keys")
async def list_api_keys(user: Reader, session: SessionDep) -> GetApiKeysResponse:
    keys = await identity_api_keys.list_api_keys(session=session, user_id=user.id)
    return GetApiKeysResponse(
        api_keys=[
            ApiKey(
                api_key_id=str(k.key_id),
                name=k.name,
                scopes=["read", "write"],
                created_ts=k.created_at,
            )
            for k in keys
        ]
    )


async def _create_key(
    session: AsyncSession, request: Request, user: AuthUser, public_pem: str, name: str
) -> str:
    """identity refuses (and audits) key creation by a signed request: the refusal's audit entry
    is committed before the error answers."""
    try:
        created = await identity_api_keys.create_api_key(
            session=session,
            caller=user,
            data=ApiKeyCreate(name=name, public_key_pem=public_pem),
            meta=request_meta(request),
        )
    except Exception as exc:
        if must_persist(exc):
            await session.commit()
        raise
    return str(created.key_id)


@api_keys.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Refused (403 SIGNED_REQUEST_CANNOT_CREATE_KEYS): a request signed with an API key "
    "cannot create keys; use POST /api/v1/api-keys from a recently authenticated session",
)
async def create_api_key(
    body: CreateApiKeyRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
) -> CreateApiKeyResponse:
    await charge_write(request, response, user, WRITE_COST)
    key_id = await _create_key(session, request, user, body.public_key, body.name)
    return CreateApiKeyResponse(api_key_id=key_id)


def _new_key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@api_keys.post(
    "/generate",
    status_code=status.HTTP_201_CREATED,
    summary="Refused like POST /api_keys; counted in the write tier, and checked before any "
    "RSA key is generated",
)
async def generate_api_key(
    body: GenerateApiKeyRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
) -> GenerateApiKeyResponse:
    # RSA generation is expensive: a write, and only after the caller may create a key at all.
    await charge_write(request, response, user, WRITE_COST)
    try:
        identity_api_keys.check_can_create_api_key(
            session=session, caller=user, meta=request_meta(request)
        )
    except Exception as exc:
        if must_persist(exc):
            await session.commit()
        raise
    private, public = await anyio.to_thread.run_sync(_new_key_pair)
    key_id = await _create_key(session, request, user, public, body.name)
    return GenerateApiKeyResponse(api_key_id=key_id, private_key=private)


@api_keys.delete("/{api_key}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key")
async def delete_api_key(
    api_key: str, request: Request, user: Reader, session: SessionDep
) -> Response:
    try:
        key_id = uuid.UUID(api_key)
    except ValueError:
        raise NotFound("API key not found", code="API_KEY_NOT_FOUND") from None
    await identity_api_keys.revoke_api_key(
        session=session, user_id=user.id, key_id=key_id, meta=request_meta(request)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
