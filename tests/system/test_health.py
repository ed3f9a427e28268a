from __future__ import annotations

import httpx
import pytest

from pull import devstack
from pull.app import create_app
from tests.conftest import AppRunner, Services, asgi_client, make_settings


async def test_health_basic(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy"
    assert "timestamp" in body
    assert len(r.headers["x-request-id"]) == 24


async def test_live_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).status_code == 200
    r = await client.get("/health/ready")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"database": "pass", "redis": "pass", "temporal": "pass"}


async def test_detailed_requires_internal_key(client: httpx.AsyncClient) -> None:
    basic = await client.get("/health/detailed")
    assert basic.status_code == 200
    assert set(basic.json()) == {"status", "timestamp"}

    wrong = await client.get("/health/detailed", headers={"X-Internal-Key": "nope"})
    assert "checks" not in wrong.json()

    r = await client.get("/health/detailed", headers={"X-Internal-Key": "dev-internal-key"})
    body = r.json()
    assert body["status"] == "healthy"
    assert set(body["checks"]) == {"database", "redis", "temporal"}
    for check in body["checks"].values():
        assert check["status"] == "pass"
        assert check["latency_ms"] >= 0
    assert body["version"]
    assert body["uptime_seconds"] >= 0


async def test_ready_is_503_when_redis_stops(services: Services) -> None:
    """A Redis of its own that we stop half-way: readiness must notice and name it."""
    redis_service, redis_url = devstack.start_redis(services.data_dir / "r2", devstack.free_port())
    try:
        app = create_app(make_settings(services, REDIS_URL=redis_url, HEALTH_TIMEOUT_SECONDS=1))
        async with AppRunner(app), asgi_client(app) as c:
            assert (await c.get("/health/ready")).status_code == 200
            redis_service.stop()
            r = await c.get("/health/ready")
            assert r.status_code == 503
            assert r.json()["failed"] == ["redis"]
            assert r.json()["checks"]["database"] == "pass"
    finally:
        redis_service.stop()


@pytest.mark.parametrize("down", ["database", "temporal"])
async def test_ready_is_503_when_dependency_unreachable(services: Services, down: str) -> None:
    port = devstack.free_port()  # nothing listens here
    overrides = {
        "database": {"DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/pull"},
        "temporal": {"TEMPORAL_ADDRESS": f"127.0.0.1:{port}"},
    }[down]
    app = create_app(make_settings(services, HEALTH_TIMEOUT_SECONDS=1, **overrides))
    async with AppRunner(app), asgi_client(app) as c:
        r = await c.get("/health/ready")
        assert r.status_code == 503
        assert r.json()["failed"] == [down]


async def test_metrics_token_guards_the_scrape(services: Services) -> None:
    """On Cloud Run the API is public: with METRICS_TOKEN set, /metrics needs the bearer token."""
    app = create_app(make_settings(services, METRICS_TOKEN="scrape-token-for-tests"))
    async with AppRunner(app), asgi_client(app) as c:
        assert (await c.get("/metrics")).status_code == 401
        wrong = await c.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "UNAUTHORIZED"
        ok = await c.get("/metrics", headers={"Authorization": "Bearer scrape-token-for-tests"})
        assert ok.status_code == 200
        assert "http_requests_total" in ok.text or "# HELP" in ok.text


async def test_metrics_open_without_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert "# HELP" in r.text
