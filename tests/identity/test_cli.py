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
        "--phone",
        "+1 415 555 0170",
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


async def test_verified_means_email_and_phone_so_kyc_can_start(
    services: Services, app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    env = services.env()
    no_phone = pull(
        env,
        "users",
        "create",
        "--email",
        "v@example.com",
        "--password",
        "User-Pass-2024x",
        "--verified",
    )
    assert no_phone.returncode == 2 and "--verified needs --phone" in no_phone.stderr
    done = pull(
        env,
        "users",
        "create",
        "--email",
        "v@example.com",
        "--password",
        "User-Pass-2024x",
        "--verified",
        "--phone",
        "+1 (415) 555-0171",
    )
    assert done.returncode == 0, done.stderr
    async with client_at(app) as c:
        r = await c.post(
            "/api/auth/login", json={"email": "v@example.com", "password": "User-Pass-2024x"}
        )
        user = r.json()["user"]
        assert user["email_verified"] and user["phone_verified"]
        assert user["phone"] == "+14155550171"
    taken = pull(
        env,
        "users",
        "create",
        "--email",
        "w@example.com",
        "--password",
        "User-Pass-2024x",
        "--verified",
        "--phone",
        "+14155550171",
    )
    assert taken.returncode == 1 and "PHONE_TAKEN" in taken.stderr
    bad = pull(
        env,
        "users",
        "create",
        "--email",
        "x@example.com",
        "--password",
        "User-Pass-2024x",
        "--phone",
        "555",
    )
    assert bad.returncode == 1 and "INVALID_PHONE" in bad.stderr


async def test_set_kyc_is_audited_with_the_operator(
    services: Services, app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    env = services.env()
    for email, extra in (("ops@example.com", ["--admin"]), ("c@example.com", [])):
        created = pull(
            env, "users", "create", "--email", email, "--password", "User-Pass-2024x", *extra
        )
        assert created.returncode == 0, created.stderr
    args = ["users", "set-kyc", "C@example.com", "standard", "--reason", "ticket 42"]
    done = pull(env, *args, "--operator", "ops@example.com")
    assert done.returncode == 0, done.stderr
    assert "c@example.com is now KYC tier standard" in done.stdout
    async with sessionmaker() as s:
        ops = await service.get_user_by_email(session=s, email="ops@example.com")
        customer = await service.get_user_by_email(session=s, email="c@example.com")
        assert ops is not None and customer is not None
        (entry,) = [
            e
            for e in await service.audit_entries(session=s, actor_id=ops.id)
            if e["action"] == "kyc.tier"
        ]
    assert entry["resource"] == f"user:{customer.id}"
    assert entry["details"]["to"] == "standard" and "ticket 42" in entry["details"]["note"]
    async with client_at(app) as c:
        r = await c.post(
            "/api/auth/login", json={"email": "c@example.com", "password": "User-Pass-2024x"}
        )
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await c.get("/api/v1/kyc/status", headers=headers)
        assert r.status_code == 200 and r.json()["current_tier"] == "standard", r.text

    not_admin = pull(env, *args, "--operator", "c@example.com")
    assert not_admin.returncode == 1 and "NOT_AN_OPERATOR" in not_admin.stderr
    bad_tier = pull(
        env,
        "users",
        "set-kyc",
        "c@example.com",
        "gold",
        "--reason",
        "x",
        "--operator",
        "ops@example.com",
    )
    assert bad_tier.returncode == 1 and "INVALID_TIER" in bad_tier.stderr
    no_reason = pull(env, "users", "set-kyc", "c@example.com", "basic")
    assert no_reason.returncode == 2
