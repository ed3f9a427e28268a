"""The API docs render with no internet access: assets are served by the app itself."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def test_docs_page_references_only_local_assets(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources
    assert all(s.startswith("/") for s in sources), sources
    for path in sources:
        assert (await client.get(path)).status_code == 200, path


async def test_openapi_lists_the_routes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "PULL API"
    for path in (
        "/health",
        "/health/ready",
        "/health/live",
        "/health/detailed",
        "/metrics",
        "/api/v1/status",
    ):
        assert path in spec["paths"], path


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")
def test_swagger_ui_renders_in_headless_chromium(api_server: str) -> None:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                "--dump-dom",
                f"{api_server}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    dom = result.stdout
    assert 'class="swagger-ui' in dom, result.stderr[-2000:]
    assert "PULL API" in dom
    # operations rendered from /openapi.json, i.e. the bundle ran and fetched the spec
    assert dom.count("opblock-summary-path") >= 5
    assert "/health/ready" in dom
