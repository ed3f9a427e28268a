"""Request id, error envelope, body limit, security headers, CORS, metrics, access log."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request

from pull.app import create_app
from tests.conftest import AppRunner, Services, asgi_client, make_settings


def assert_envelope(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    assert err["request_id"] == r.headers["x-request-id"]
    return err  # type: ignore[no-any-return]


async def test_request_ids_are_unique_and_server_generated(client: httpx.AsyncClient) -> None:
    a = await client.get("/health", headers={"X-Request-ID": "client-chosen"})
    b = await client.get("/health")
    assert a.headers["x-request-id"] != "client-chosen"
    assert re.fullmatch(r"[0-9a-f]{24}", a.headers["x-request-id"])
    assert a.headers["x-request-id"] != b.headers["x-request-id"]


async def test_framework_errors_use_the_envelope(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/no/such/path"), 404, "NOT_FOUND")
    err = assert_envelope(await client.delete("/health"), 405, "METHOD_NOT_ALLOWED")
    assert err["details"] is None


async def test_validation_error_uses_the_envelope(client: httpx.AsyncClient) -> None:
    # /metrics takes no body, so use a query parameter route with a type: build one.
    app = FastAPI()
    from pull.kit.errors import install_error_handlers

    install_error_handlers(app)

    @app.get("/typed")
    async def typed(n: int) -> dict[str, int]:
        return {"n": n}

    async with asgi_client(app) as c:
        r = await c.get("/typed", params={"n": "x"})
    assert r.status_code == 422
    body = r.json()["error"]
    assert body["code"] == "VALIDATION_ERROR"
    assert body["details"][0]["loc"] == ["query", "n"]


async def test_an_exhausted_database_pool_is_a_503_with_retry_after(services: Services) -> None:
    """Under overload a request that cannot get a connection answers 503, never 500."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from pull.kit.errors import install_error_handlers

    engine = create_async_engine(
        services.database_url, pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/read")
    async def read() -> dict[str, int]:
        async with engine.connect() as conn:
            return {"one": (await conn.execute(text("SELECT 1"))).scalar_one()}

    try:
        async with asgi_client(app) as c:
            assert (await c.get("/read")).json() == {"one": 1}
            async with engine.connect():  # the pool's only connection is now taken
                r = await c.get("/read")
        err = r.json()["error"]
        assert r.status_code == 503 and err["code"] == "SERVICE_OVERLOADED", r.text
        assert r.headers["retry-after"] == "1"
    finally:
        await engine.dispose()


async def test_security_headers(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "strict-transport-security" not in r.headers  # only in production
    docs = await client.get("/docs")
    assert "script-src 'self'" in docs.headers["content-security-policy"]


async def test_hsts_in_production(services: Services) -> None:
    app = create_app(make_settings(services, ENVIRONMENT="production"))
    async with AppRunner(app), asgi_client(app) as c:
        r = await c.get("/health")
    assert r.headers["strict-transport-security"].startswith("max-age=")


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b"x" * n


@pytest.fixture
async def echo_client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The real app plus a route that reads its whole body."""
    app = create_app(make_settings(services))

    @app.post("/echo-length")
    async def echo(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    async with AppRunner(app), asgi_client(app) as c:
        yield c


async def test_body_limit_on_chunked_body(echo_client: httpx.AsyncClient) -> None:
    """No Content-Length: the limit must count the bytes actually received."""
    r = await echo_client.post("/echo-length", content=_chunks(2 * 1024 * 1024))
    assert "content-length" not in r.request.headers
    assert_envelope(r, 413, "PAYLOAD_TOO_LARGE")


async def test_body_limit_on_declared_length(echo_client: httpx.AsyncClient) -> None:
    r = await echo_client.post("/echo-length", content=b"x" * (1024 * 1024 + 1))
    assert_envelope(r, 413, "PAYLOAD_TOO_LARGE")


async def test_body_under_limit_passes_through(echo_client: httpx.AsyncClient) -> None:
    r = await echo_client.post("/echo-length", content=_chunks(900 * 1024))
    assert r.status_code == 200
    assert r.json() == {"length": 900 * 1024}


async def test_cors_exact_origins(services: Services) -> None:
    app = create_app(make_settings(services, CORS_ORIGINS="https://app.pull.com"))
    async with AppRunner(app), asgi_client(app) as c:
        pre = await c.options(
            "/api/v1/status",
            headers={
                "Origin": "https://app.pull.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Idempotency-Key, Authorization",
            },
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://app.pull.com"
        assert pre.headers["access-control-allow-credentials"] == "true"
        assert "idempotency-key" in pre.headers["access-control-allow-headers"].lower()
        signed = await c.options(
            "/trade-api/v2/portfolio/orders",
            headers={
                "Origin": "https://app.pull.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "KALSHI-ACCESS-KEY, KALSHI-ACCESS-SIGNATURE, "
                "KALSHI-ACCESS-TIMESTAMP",
            },
        )
        assert signed.status_code == 200

        simple = await c.get("/health", headers={"Origin": "https://app.pull.com"})
        exposed = simple.headers["access-control-expose-headers"].lower()
        for name in ("x-request-id", "x-ratelimit-limit", "x-ratelimit-remaining", "retry-after"):
            assert name in exposed

        evil = await c.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in evil.headers


async def test_metrics_use_route_templates(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.get("/api/v1/status")
    for i in range(3):
        await client.get(f"/no/such/thing/{i}")
    text = (await client.get("/metrics")).text
    assert re.search(
        r'http_requests_total\{method="GET",route="/api/v1/status",status="200"\} [1-9]', text
    )
    assert 'route="unmatched"' in text
    assert "/no/such/thing/1" not in text
    assert "http_request_duration_seconds_bucket" in text
    assert re.search(r"^db_connection_pool_max \d", text, re.M)
    assert re.search(r"^db_connection_pool_active \d", text, re.M)
    assert "process_resident_memory_bytes" in text
    assert re.search(r"^process_memory_limit_bytes [1-9]", text, re.M)


async def test_metric_labels_for_path_params(services: Services) -> None:
    app = create_app(make_settings(services))
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.include_router(router)
    async with AppRunner(app), asgi_client(app) as c:
        await c.get("/items/12345")
        text = (await c.get("/metrics")).text
    assert 'route="/items/{item_id}"' in text
    assert "12345" not in text


async def test_access_log_is_json_without_secrets(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    from pull.kit.logging import JsonFormatter

    caplog.set_level(logging.INFO, logger="pull.access")
    await client.get(
        "/api/v1/status?token=abc", headers={"Authorization": "Bearer super-secret-token"}
    )
    records = [r for r in caplog.records if r.name == "pull.access"]
    assert records
    line = JsonFormatter().format(records[-1])
    entry = json.loads(line)
    assert entry["method"] == "GET"
    assert entry["route"] == "/api/v1/status"
    assert entry["status"] == 200
    assert entry["duration_ms"] >= 0
    assert len(entry["request_id"]) == 24
    assert "super-secret-token" not in line
    assert "token=abc" not in line


def test_formatter_redacts_secret_fields() -> None:
    from pull.kit.logging import JsonFormatter

    record = logging.makeLogRecord(
        {"msg": "x", "password": "hunter2", "refresh_token": "r", "user_id": "u1"}
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["password"] == "[redacted]"
    assert entry["refresh_token"] == "[redacted]"
    assert entry["user_id"] == "u1"
