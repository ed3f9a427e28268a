"""Analytics test helpers: chDB in this process (one engine per process, so one data
directory for the whole session, emptied before each test) and an app that uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.analytics import warehouse
from pull.analytics.client import Warehouse, warehouse_for
from pull.analytics.ingest import Ingestor
from pull.app import create_app
from pull.config import Settings
from tests.conftest import AppRunner, Services, asgi_client, make_settings


def analytics_overrides(services: Services) -> dict[str, Any]:
    return {
        "CLICKHOUSE_CHDB_PATH": str(services.data_dir / "chdb"),
        "ANALYTICS_GAP_SECONDS": 0.5,
    }


@pytest.fixture(scope="session")
def analytics_settings(services: Services) -> Settings:
    return make_settings(services, **analytics_overrides(services))


@pytest.fixture(scope="session")
def wh(analytics_settings: Settings) -> Iterator[Warehouse]:
    store = warehouse_for(analytics_settings)
    yield store


@pytest.fixture(autouse=True)
def _empty_clickhouse(request: pytest.FixtureRequest) -> None:
    if "wh" in request.fixturenames or "analytics_client" in request.fixturenames:
        store: Warehouse = request.getfixturevalue("wh")
        from pull.analytics import chschema

        chschema.migrate(store)
        warehouse.truncate(store)


@pytest.fixture(scope="session")
async def analytics_app(analytics_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(analytics_settings)
    async with AppRunner(application):
        yield application


@pytest.fixture
async def analytics_client(
    analytics_app: FastAPI, wh: Warehouse
) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(analytics_app) as c:
        yield c


@pytest.fixture
def ingestor(sessionmaker: async_sessionmaker[AsyncSession], wh: Warehouse) -> Ingestor:
    return Ingestor(sessionmaker, wh, batch_size=1000, gap_seconds=0.5)


# the funding module's API-over-HTTP + worker environment drives deposits and withdrawals
from tests.funding.conftest import funding_env  # noqa: E402, F401
