"""Messaging tests: the app (ASGI) pointed at a real Synapse started once per session."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from pull.app import create_app
from pull.config import Settings
from tests.conftest import AppRunner, MatrixServer, Services, asgi_client, make_settings


def matrix_settings(services: Services, matrix: MatrixServer, **extra: Any) -> Settings:
    return make_settings(
        services,
        MATRIX_HOMESERVER_URL=matrix.url,
        MATRIX_REGISTRATION_SHARED_SECRET=matrix.shared_secret,
        **extra,
    )


@pytest.fixture
async def mclient(services: Services, matrix: MatrixServer) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(matrix_settings(services, matrix)) as c:
        yield c


@pytest.fixture
async def mclient_unlimited(
    services: Services, matrix: MatrixServer
) -> AsyncIterator[httpx.AsyncClient]:
    """Without rate limits, for tests that send many messages."""
    async with _client(matrix_settings(services, matrix, RATE_LIMIT_ENABLED=False)) as c:
        yield c


@contextlib.asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    stack = contextlib.AsyncExitStack()
    app = await stack.enter_async_context(AppRunner(create_app(settings)))
    client = await stack.enter_async_context(asgi_client(app))
    try:
        yield client
    finally:
        await stack.aclose()
