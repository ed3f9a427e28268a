"""Test fixtures: real PostgreSQL, Redis and Temporal.

By default an embedded stack (the same one `pull dev` runs) starts once per test session in
a temporary directory on free ports. Set DATABASE_URL, REDIS_URL or TEMPORAL_ADDRESS to use
servers of your own instead. Every test starts from empty tables and an empty Redis.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from pull import devstack
from pull.app import create_app
from pull.config import Environment, Settings
from pull.kit.db import make_engine, make_sessionmaker
from pull.kit.redis import make_redis
from pull.migrate import upgrade

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Services:
    database_url: str
    redis_url: str
    temporal_address: str
    pg_bin: Path
    postgres_port: int | None
    data_dir: Path
    stack: devstack.Stack | None = None
    extra: list[devstack.Service] = field(default_factory=list)

    @property
    def sync_database_url(self) -> str:
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://")

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment for a child `pull` process pointed at these services."""
        env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "TEMPORAL_ADDRESS": self.temporal_address,
            "LOG_LEVEL": "warning",
            "ANALYTICS_INGEST": "off",
            "WORKER_SCHEDULES": "false",  # test workers create no Temporal schedules
        }
        env.update(overrides)
        return env


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    data_dir = Path(tempfile.mkdtemp(prefix="pull-test-"))
    os.chmod(data_dir, 0o755)
    db_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    temporal = os.environ.get("TEMPORAL_ADDRESS")
    started: list[devstack.Service] = []
    pg_port: int | None = None
    try:
        if not db_url:
            pg_port = devstack.free_port()
            pg, db_url = devstack.start_postgres(data_dir, pg_port)
            started.append(pg)
        if not redis_url:
            rd, redis_url = devstack.start_redis(data_dir, devstack.free_port())
            started.append(rd)
        if not temporal:
            tp, temporal = devstack.start_temporal(data_dir, devstack.quiet_free_port(), None)
            started.append(tp)
        upgrade(db_url)
        svc = Services(
            database_url=db_url,
            redis_url=redis_url,
            temporal_address=temporal,
            pg_bin=devstack.pg_bin_dir(),
            postgres_port=pg_port,
            data_dir=data_dir,
            extra=started,
        )
        yield svc
    finally:
        for service in reversed(started):
            service.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def make_settings(services: Services, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "ENVIRONMENT": Environment.test,
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "TEMPORAL_ADDRESS": services.temporal_address,
        "DB_POOL_SIZE": 20,
        "DB_MAX_OVERFLOW": 20,
        # Fast hashing in tests; production parameters are the defaults (docs/configuration.md).
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_COST": 1024,
        # ClickHouse only where a test asks for it (tests/analytics); chDB is one per process
        "ANALYTICS_INGEST": "off",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def settings(services: Services) -> Settings:
    return make_settings(services)


class AppRunner:
    """Runs an app's lifespan so that ASGI-transport clients see a started app."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._ctx: Any = None

    async def __aenter__(self) -> FastAPI:
        self._ctx = self.app.router.lifespan_context(self.app)
        await self._ctx.__aenter__()
        return self.app

    async def __aexit__(self, *exc: object) -> None:
        await self._ctx.__aexit__(None, None, None)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with AppRunner(application):
        yield application


def asgi_client(
    application: FastAPI, *, raise_app_exceptions: bool = True, **kwargs: Any
) -> httpx.AsyncClient:
    """An in-process client; `raise_app_exceptions=False` shows what a real server would send."""
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", **kwargs)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as c:
        yield c


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(settings.database_url, pool_size=20, max_overflow=20)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine, redis: Redis) -> async_sessionmaker[AsyncSession]:
    # with Redis, as the app's and the worker's: a change a test makes (say, restricting a
    # user) reaches the API processes' caches at once (pull.identity.auth_cache)
    return make_sessionmaker(engine, redis=redis)


@pytest.fixture
async def session(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as s:
        yield s


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    r = make_redis(settings.redis_url)
    yield r
    await r.aclose()


async def _truncate_all(database_url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(f'"{t["tablename"]}"' for t in tables)
            for attempt in range(5):
                try:
                    await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
                    break
                except asyncpg.exceptions.DeadlockDetectedError:
                    # a real `pull api` process of the session may be mid-query; try again
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2)
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> None:
    """Empty every table and Redis before each test that uses the services."""
    if "services" not in request.fixturenames:
        return
    import redis as sync_redis

    svc: Services = request.getfixturevalue("services")
    asyncio.run(_truncate_all(svc.database_url))
    client = sync_redis.Redis.from_url(svc.redis_url)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture(scope="session")
async def temporal_client(services: Services) -> Client:
    return await Client.connect(services.temporal_address)


@pytest.fixture
def task_queue() -> str:
    """A fresh task queue per test, so no other test's worker picks up its tasks."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
async def worker_runtime(settings: Settings) -> AsyncIterator[Any]:
    from pull.kit.runtime import set_worker_runtime
    from pull.worker import init_runtime

    runtime = init_runtime(settings)
    yield runtime
    await runtime.redis.aclose()
    await runtime.engine.dispose()
    set_worker_runtime(None)


# --- real processes -------------------------------------------------------------------------


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "pull.cli", *args],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
    )


spawn = _spawn  # `pull <args>` as a child process (the journey tests use it)
free_port = devstack.free_port


def wait_http(url: str, timeout: float = 90, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(url)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def start_api_process(
    services: Services, *, start_timeout: float = 90, **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = devstack.free_port()
    log = services.data_dir / f"api-{port}.log"
    proc = _spawn(["api"], services.env(PORT=str(port), HOST="127.0.0.1", **env), log)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health/live", timeout=start_timeout, proc=proc)
    return proc, url


@pytest.fixture(scope="session")
def api_server(services: Services) -> Iterator[str]:
    """A real `pull api` process against the test services."""
    proc, url = start_api_process(services)
    yield url
    stop_process(proc)


def create_scratch_database(services: Services, prefix: str) -> str:
    """A new, migrated database on the test server; returns its asyncpg URL."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    base = services.sync_database_url.rsplit("/", 1)[0]

    async def create() -> None:
        conn = await asyncpg.connect(f"{base}/postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    url = services.database_url.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def worker_metrics_url(services: Services) -> Iterator[str]:
    """A real `pull worker` process; yields the URL of its /metrics.

    It gets a database and a Redis db of its own: its outbox relay and clocks must not act on
    the rows of the tests running beside it (nor hold locks that the per-test cleanup needs).
    """
    port = devstack.free_port()
    log = services.data_dir / "worker.log"
    database_url = create_scratch_database(services, "pull_worker")
    redis_url = services.redis_url.rsplit("/", 1)[0] + "/1"
    proc = _spawn(
        ["worker"],
        services.env(METRICS_PORT=str(port), DATABASE_URL=database_url, REDIS_URL=redis_url),
        log,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    wait_http(url, proc=proc)
    yield url
    stop_process(proc)


# --- Matrix: a real Synapse homeserver, started once per session by the tests that ask ------


@dataclass
class MatrixServer:
    url: str
    shared_secret: str


@pytest.fixture(scope="session")
def matrix(services: Services) -> Iterator[MatrixServer]:
    """Synapse from the `embedded` extra (SQLite, loopback), or MATRIX_HOMESERVER_URL and
    MATRIX_REGISTRATION_SHARED_SECRET of your own."""
    url = os.environ.get("MATRIX_HOMESERVER_URL")
    if url:
        yield MatrixServer(url, os.environ["MATRIX_REGISTRATION_SHARED_SECRET"])
        return
    synapse, url, secret = devstack.start_synapse(services.data_dir, devstack.free_port())
    try:
        yield MatrixServer(url, secret)
    finally:
        synapse.stop()


# --- identity: users for any test (owned by the identity module) -----------------------------

from collections.abc import Awaitable, Callable  # noqa: E402

DEFAULT_TEST_PASSWORD = "Correct-Horse-9-Battery"


@dataclass
class TestUser:
    """A registered user with a live session; `headers` carry its bearer access token."""

    __test__ = False  # not a test class, despite the name

    id: uuid.UUID
    email: str
    password: str
    access_token: str
    refresh_token: str
    headers: dict[str, str]
    # Base32 TOTP secret when two-factor authentication is on (admins: see user_factory).
    totp_secret: str | None = None


UserFactory = Callable[..., Awaitable[TestUser]]


def random_client_ip() -> str:
    """A loopback address of its own, so a test's calls do not share the per-IP auth limit."""
    import secrets

    return "127.{}.{}.{}".format(*(secrets.randbelow(254) + 1 for _ in range(3)))


@pytest.fixture
def user_factory(app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]) -> UserFactory:
    """`await user_factory(email=None, password=None, admin=False, verified=True, totp=None)`.

    Registers through the real HTTP endpoint (from a client IP of its own, so the auth rate
    limit of the test's own client is untouched), then sets the role and, when `verified`,
    marks the email and a phone number verified through the identity service. With `totp`
    (default: on for admins, since admin routes require 2FA) it enrols two-factor
    authentication through the real endpoints (`/api/auth/2fa/setup` and `/enable`); the secret
    is in `TestUser.totp_secret`. `admin=True, totp=False` gives an admin without 2FA.

    A shortcut past the email and phone gates, for tests that are not about them: those gates
    are passed through the API in tests/identity/test_phone.py, tests/identity/test_mail.py and,
    with every other gate, in tests/test_journey.py.
    """
    from pull.identity import service

    async def make(
        email: str | None = None,
        password: str | None = None,
        admin: bool = False,
        verified: bool = True,
        totp: bool | None = None,
    ) -> TestUser:
        email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
        password = password or DEFAULT_TEST_PASSWORD
        transport = httpx.ASGITransport(app=app, client=(random_client_ip(), 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.post("/api/auth/register", json={"email": email, "password": password})
            assert r.status_code == 201, r.text
            body = r.json()
            headers = {"Authorization": f"Bearer {body['access_token']}"}
            secret = await enable_totp(c, headers) if (admin if totp is None else totp) else None
        user_id = uuid.UUID(body["user"]["id"])
        if admin or verified:
            async with sessionmaker() as s:
                if admin:
                    await service.set_role(session=s, user_id=user_id, role="admin")
                if verified:
                    await service.mark_email_verified(session=s, user_id=user_id)
                    phone = "+1555" + str(int(user_id.hex[:12], 16) % 10**7).zfill(7)
                    await service.set_phone_verified(session=s, user_id=user_id, phone=phone)
                await s.commit()
        return TestUser(
            id=user_id,
            email=body["user"]["email"],
            password=password,
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
            headers=headers,
            totp_secret=secret,
        )

    return make


async def enable_totp(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """Turn two-factor authentication on through the real endpoints; returns the secret."""
    import pyotp

    setup = await client.post("/api/auth/2fa/setup", headers=headers)
    assert setup.status_code == 200, setup.text
    secret = str(setup.json()["secret"])
    code = pyotp.TOTP(secret).now()
    enable = await client.post("/api/auth/2fa/enable", headers=headers, json={"code": code})
    assert enable.status_code == 200, enable.text
    return secret


# --- kyc: tiers for any test (owned by the kyc module) --------------------------------------

KycTierSetter = Callable[[uuid.UUID, str], Awaitable[None]]


@pytest.fixture
def kyc_tier(sessionmaker: async_sessionmaker[AsyncSession]) -> KycTierSetter:
    """`await kyc_tier(user_id, "basic")`: set a user's KYC tier through the kyc service and
    commit (none, basic, standard, enhanced, accredited; valid for KYC_APPROVAL_VALID_DAYS).

    A shortcut past the KYC gate; tests/kyc/test_workflow.py and tests/test_journey.py reach a
    tier through the API and the sandbox providers."""
    from pull.kyc import service as kyc_service

    async def set_tier(user_id: uuid.UUID, tier: str) -> None:
        async with sessionmaker() as s, s.begin():
            await kyc_service.set_tier(
                session=s, user_id=user_id, tier=tier, actor_id=None, note="test fixture"
            )

    return set_tier
