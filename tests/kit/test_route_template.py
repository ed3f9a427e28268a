"""Metric route labels stay templates for routes of a mounted sub-application."""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.routing import Mount

from pull.kit.middleware import RequestContextMiddleware, route_template
from tests.conftest import asgi_client


def test_route_template_of_plain_mounted_and_unmatched_routes() -> None:
    sub = FastAPI()

    @sub.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    inner = sub.router.routes[-1]
    mount = Mount("/sub", app=sub)
    assert route_template({"route": inner}) == "/items/{item_id}"
    # Inside a mount, root_path carries the prefix.
    assert route_template({"route": inner, "root_path": "/sub"}) == "/sub/items/{item_id}"
    # The mount matched but nothing inside it did (the sub-app's 404): no doubled prefix.
    assert route_template({"route": mount, "root_path": "/sub"}) == "unmatched"
    assert route_template({}) == "unmatched"


async def test_metrics_of_a_mounted_app() -> None:
    sub = FastAPI()

    @sub.get("/things/{name}")
    async def thing(name: str) -> dict[str, str]:
        return {"name": name}

    app = FastAPI()
    app.mount("/mounted-prefix", sub)
    app.add_middleware(RequestContextMiddleware, body_limit=1024, hsts=False)
    labels: list[str] = []

    from pull.kit import middleware

    original = middleware.route_template

    def spy(scope: dict[str, object]) -> str:
        labels.append(original(scope))
        return labels[-1]

    middleware.route_template = spy  # type: ignore[assignment]
    try:
        async with asgi_client(app) as c:
            assert (await c.get("/mounted-prefix/things/abc")).status_code == 200
            assert (await c.get("/mounted-prefix/nowhere/xyz")).status_code == 404
            assert (await c.get("/elsewhere")).status_code == 404
    finally:
        middleware.route_template = original
    assert labels == ["/mounted-prefix/things/{name}", "unmatched", "unmatched"]
    assert not any(re.search(r"abc|xyz", label) for label in labels)
