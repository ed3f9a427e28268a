"""Helpers for the identity tests."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.identity import service
from tests.conftest import random_client_ip

PASSWORD = "Correct-Horse-9-Battery"


def client_at(app: FastAPI, ip: str | None = None) -> httpx.AsyncClient:
    """An ASGI client whose requests come from `ip` (a fresh loopback address by default)."""
    transport = httpx.ASGITransport(app=app, client=(ip or random_client_ip(), 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def error_without_request_id(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    body["error"].pop("request_id")
    return dict(body)


def mint(settings: Settings, secret: str | None = None, alg: str = "HS256", **claims: Any) -> str:
    """An access-token-shaped JWT with chosen claims, signed as asked."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": "pull-api",
        "aud": "pull-app",
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "typ": "access",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 900,
    }
    payload.update(claims)
    return jwt.encode(payload, secret if secret is not None else settings.jwt_secret, algorithm=alg)


async def mails_to(
    maker: async_sessionmaker[AsyncSession], email: str, kind: str | None = None
) -> list[service.Email]:
    async with maker() as s:
        mails = await service.outbound_emails(session=s, to_address=email)
    return [m for m in mails if kind is None or m.kind == kind]


def token_in(mail: service.Email) -> str:
    found = re.search(r"token=([A-Za-z0-9_\-]+)", mail.body)
    assert found, mail.body
    return found.group(1)


async def sql(maker: async_sessionmaker[AsyncSession], statement: str, **params: Any) -> Any:
    """Test-only time travel and inspection (e.g. moving `locked_until` into the past)."""
    async with maker() as s:
        result = await s.execute(text(statement), params)
        await s.commit()
        return result
