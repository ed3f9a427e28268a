"""Migrations reach head on an empty database, match the models exactly, and roll back."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from alembic import command
from alembic.script import ScriptDirectory

from pull.migrate import alembic_config, downgrade, upgrade
from tests.conftest import Services


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _admin(services: Services, sql: str) -> None:
    conn = await asyncpg.connect(_with_database(services.sync_database_url, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def test_single_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, heads


def test_upgrade_check_downgrade_upgrade(services: Services) -> None:
    name = f"migr_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(services, f'CREATE DATABASE "{name}"'))
    url = _with_database(services.database_url, name)
    try:
        upgrade(url)
        command.check(alembic_config(url))  # raises if models and migrations differ
        downgrade(url, "base")
        upgrade(url)
        command.check(alembic_config(url))
    finally:
        asyncio.run(_admin(services, f'DROP DATABASE "{name}" WITH (FORCE)'))
