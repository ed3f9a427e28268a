"""`pull users create` and `pull users grant-admin`, run as real processes."""

from __future__ import annotations

import subprocess
import sys

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull import devstack
from pull.identity import service
from tests.conftest import REPO, Services
from tests.identity.conftest import client_at


def pull(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pull.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_create_admin_then_log_in(
    services: Services, app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    env = services.env()
    done = pull(
        env,
        "users",
        "create",
        "--email",
        "Ops@Example.com",
        "--password",
        "Ops-Pass-2024x",
        "--admin",
    )
    assert done.returncode == 0, done.stderr
    assert "created admin ops@example.com" in done.stdout
    async with sessionmaker() as s:
        user = await service.get_user_by_email(session=s, email="ops@example.com")
    assert user is not None and user.role == "admin" and not user.email_verified

    async with client_at(app) as c:
        r = await c.post(
            "/api/auth/login", json={"email": "ops@example.com", "password": "Ops-Pass-2024x"}
        )
        assert r.status_code == 200
        assert r.json()["user"]["role"] == "admin"

    again = pull(
        env, "users", "create", "--email", "ops@example.com", "--password", "Ops-Pass-2024x"
    )
    assert again.returncode == 1
    assert "EMAIL_TAKEN" in again.stderr
    weak = pull(env, "users", "create", "--email", "w@example.com", "--password", "password")
    assert weak.returncode == 1
    assert "WEAK_PASSWORD" in weak.stderr


async def test_grant_admin(
    services: Services, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    env = services.env()
    created = pull(
        env,
        "users",
        "create",
        "--email",
        "u@example.com",
        "--password",
        "User-Pass-2024x",
        "--verified",
    )
    assert created.returncode == 0, created.stderr
    done = pull(env, "users", "grant-admin", "U@example.com")
    assert done.returncode == 0, done.stderr
    assert "u@example.com is now admin" in done.stdout
    async with sessionmaker() as s:
        user = await service.get_user_by_email(session=s, email="u@example.com")
    assert user is not None and user.role == "admin" and user.email_verified
    missing = pull(env, "users", "grant-admin", "nobody@example.com")
    assert missing.returncode == 1
    assert "USER_NOT_FOUND" in missing.stderr


async def test_without_database_url_it_uses_the_pull_dev_port(
    services: Services, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """No DATABASE_URL: the command reaches PostgreSQL where `pull dev` runs it."""
    env = {k: v for k, v in services.env().items() if k != "DATABASE_URL"}
    env["ENVIRONMENT"] = "development"
    if services.postgres_port is not None:
        env["PULL_DEV_POSTGRES_PORT"] = str(services.postgres_port)
        done = pull(
            env, "users", "create", "--email", "dev@example.com", "--password", "Dev-Pass-2024x"
        )
        assert done.returncode == 0, done.stderr
        async with sessionmaker() as s:
            assert await service.get_user_by_email(session=s, email="dev@example.com") is not None
    # Nothing listening there: one clear line, exit 1.
    env["PULL_DEV_POSTGRES_PORT"] = str(devstack.free_port())
    down = pull(env, "users", "grant-admin", "dev@example.com")
    assert down.returncode == 1
    assert "cannot reach the database" in down.stderr
