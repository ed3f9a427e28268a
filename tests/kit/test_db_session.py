"""The request boundary commits before the response leaves: a failed commit is never a 200."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pull.app import create_app
from pull.kit.db import SessionDep
from tests.conftest import AppRunner, Services, asgi_client, make_settings


@pytest.fixture
async def probe_table(engine: AsyncEngine) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS commit_probe"))
        await conn.execute(
            text(
                "CREATE TABLE commit_probe (id int PRIMARY KEY, v int, "
                "CONSTRAINT commit_probe_v UNIQUE (v) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    yield
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE commit_probe"))


async def test_commit_failure_is_not_reported_as_success(
    services: Services, probe_table: None, engine: AsyncEngine
) -> None:
    app = create_app(make_settings(services))

    @app.post("/probe/{first}/{second}")
    async def probe(first: int, second: int, session: SessionDep) -> dict[str, str]:
        # a deferred unique constraint fails only at COMMIT, after the handler returned
        await session.execute(
            text("INSERT INTO commit_probe VALUES (:i, :v)"), {"i": 1, "v": first}
        )
        await session.execute(
            text("INSERT INTO commit_probe VALUES (:i, :v)"), {"i": 2, "v": second}
        )
        return {"status": "written"}

    async with AppRunner(app), asgi_client(app, raise_app_exceptions=False) as c:
        bad = await c.post("/probe/7/7")
        assert bad.status_code == 500
        assert bad.json()["error"]["code"] == "INTERNAL_ERROR"
        async with engine.connect() as conn:
            assert (await conn.scalar(text("SELECT count(*) FROM commit_probe"))) == 0

        good = await c.post("/probe/7/8")
        assert good.status_code == 200
        async with engine.connect() as conn:
            assert (await conn.scalar(text("SELECT count(*) FROM commit_probe"))) == 2


async def test_handler_error_rolls_back(
    services: Services, probe_table: None, engine: AsyncEngine
) -> None:
    from pull.kit.errors import Conflict

    app = create_app(make_settings(services))

    @app.post("/half")
    async def half(session: SessionDep) -> dict[str, str]:
        await session.execute(text("INSERT INTO commit_probe VALUES (1, 1)"))
        raise Conflict("second step failed")

    async with AppRunner(app), asgi_client(app) as c:
        r = await c.post("/half")
    assert r.status_code == 409
    async with engine.connect() as conn:
        assert (await conn.scalar(text("SELECT count(*) FROM commit_probe"))) == 0


def test_session_dependency_is_function_scoped() -> None:
    from typing import get_args

    depends = get_args(SessionDep)[1]
    assert depends.scope == "function"
