"""The route index (kit.routing) picks the route FastAPI's own walk picks, for every route."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi import routing as fastapi_routing
from redis.asyncio import Redis
from starlette.routing import Match

from pull.app import create_app
from pull.kit.ratelimit import RateLimiter
from pull.kit.routing import IndexedDispatch
from tests.conftest import asgi_client

Included: Any = fastapi_routing._IncludedRouter


def _scope(app: FastAPI, method: str, path: str, root_path: str = "") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": root_path + path,
        "root_path": root_path,
        "headers": [],
        "query_string": b"",
        "app": app,
    }


def _leaf_original(included: Any, scope: dict[str, Any]) -> tuple[Any, Any]:
    match, child, route, context = type(included)._match(included, scope)
    if match == Match.FULL and isinstance(route, Included):
        return _leaf_original(route, {**scope, **child})
    return match, context.original_route if context is not None else route


def _leaf_indexed(included: Any, scope: dict[str, Any]) -> tuple[Any, Any]:
    match, child, route, context = included._match(scope)  # the index's, per instance
    if match == Match.FULL and isinstance(route, Included):
        return _leaf_indexed(route, {**scope, **child})
    return match, context.original_route if context is not None else route


def _resolve(routes: list[Any], scope: dict[str, Any], *, indexed: bool) -> tuple[Any, Any]:
    partial = None
    for route in routes:
        match, child = route.matches(scope) if indexed else _top_match(route, scope)
        if match == Match.FULL:
            if isinstance(route, Included):
                leaf = _leaf_indexed if indexed else _leaf_original
                return leaf(route, {**scope, **child})
            return match, route
        if match == Match.PARTIAL and partial is None:
            partial = route
    return (Match.PARTIAL, None) if partial is not None else (Match.NONE, None)


def _top_match(route: Any, scope: dict[str, Any]) -> tuple[Any, Any]:
    if isinstance(route, Included):
        match, _, _, _ = type(route)._match(route, scope)
        return match, {}
    result: tuple[Any, Any] = route.matches(scope)
    return result


def _sample(template: str) -> str:
    def fill(m: re.Match[str]) -> str:
        kind = m.group(2) or "str"
        return {"path": "a/b", "int": "7", "float": "1.5", "uuid": str(uuid.UUID(int=5))}.get(
            kind, "x1"
        )

    return re.sub(r"\{(\w+)(?::(\w+))?\}", fill, template)


def _templates(app: FastAPI) -> list[str]:
    found = []
    for route in app.router.routes:
        if isinstance(route, Included):
            found += [c.path_format for c in route.effective_route_contexts()]
        elif hasattr(route, "path_format"):
            found.append(route.path_format)
    return found


def _paths(templates: list[str]) -> list[str]:
    paths = {"/", "", "/nope", "/api", "/api/v1", "/api/v1/", "/api/v1/zzz/1", "//x", "/a//b"}
    for template in templates:
        path = _sample(template)
        paths |= {path, path + "/", path.rstrip("/") + "x", path[:-1], path + "/extra"}
        paths |= {path.rsplit("/", 1)[0], path.rsplit("/", 1)[0] + "/"}
    return sorted(paths)


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app()


def test_every_route_resolves_as_fastapi_resolves_it(app: FastAPI) -> None:
    stack = app.router.middleware_stack
    assert isinstance(stack, IndexedDispatch)
    index = stack.index()
    templates = _templates(app)
    assert len(templates) > 200
    checked = 0
    for path in _paths(templates):
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            scope = _scope(app, method, path)
            expected = _resolve(app.router.routes, dict(scope), indexed=False)
            got = _resolve(index.candidates(path), dict(scope), indexed=True)
            assert got == expected, (method, path)
            checked += expected[0] == Match.FULL
    assert checked > len(templates)  # every route was reached at least once


def test_trade_api_routes_resolve_as_fastapi_resolves_them(app: FastAPI) -> None:
    mount = _trade_api_mount(app)  # the Trade API sub-application (TradeApiFallback)
    sub: FastAPI = mount.app
    stack = sub.router.middleware_stack
    assert isinstance(stack, IndexedDispatch)
    index = stack.index()
    templates = _templates(sub)
    assert len(templates) > 20
    for path in _paths(templates):
        for method in ("GET", "POST", "PUT", "DELETE"):
            scope = _scope(sub, method, path, root_path=mount.path)
            expected = _resolve(sub.router.routes, dict(scope), indexed=False)
            got = _resolve(index.candidates(path), dict(scope), indexed=True)
            assert got == expected, (method, path)


def _trade_api_mount(app: FastAPI) -> Any:
    fallback: Any = app.router.default  # TradeApiFallback
    return fallback.mount


def _plain(app: FastAPI) -> FastAPI:
    """The same app with FastAPI's own dispatch (the index taken off both routers)."""
    app.router.middleware_stack = app.router.app
    sub: FastAPI = _trade_api_mount(app).app
    sub.router.middleware_stack = sub.router.app
    return app


def _comparable(response: Any) -> tuple[int, str, list[tuple[str, str]]]:
    body = re.sub(r'"request_id":\s*"[0-9a-f]+"', '"request_id": ""', response.text)
    headers = sorted((k, v) for k, v in response.headers.items() if k != "x-request-id")
    return response.status_code, body, headers


async def test_answers_without_a_match_are_fastapis() -> None:
    """405, trailing-slash redirects, 404s, the Trade API fallback and a dependency's 401:
    byte for byte what FastAPI's own dispatch answers."""
    indexed, plain = create_app(), _plain(create_app())
    for each in (indexed, plain):  # no lifespan here: rate limits off, no Redis needed
        each.state.rate_limiter = RateLimiter(Redis(), enabled=False)
    requests = [
        ("POST", "/health/live"),
        ("GET", "/health/live/"),
        ("GET", "/api/v1/rewards/balance"),
        ("GET", "/api/v1/rewards/balance/"),
        ("DELETE", "/api/v1/orders"),
        ("GET", "/no/such/route"),
        ("GET", "/trade-api/v2/no-such"),
        ("GET", "/trade-api/v2/portfolio/balance"),
        ("GET", "/api/v1/markets/X1/orderbook/extra"),
        ("GET", "/openapi.json"),
    ]
    async with asgi_client(indexed) as a, asgi_client(plain) as b:
        for method, path in requests:
            got = await a.request(method, path)
            expected = await b.request(method, path)
            assert _comparable(got) == _comparable(expected), (method, path)
    assert json.dumps(indexed.openapi(), sort_keys=True) == json.dumps(
        plain.openapi(), sort_keys=True
    )


async def test_routes_added_after_the_first_request_are_served() -> None:
    app = create_app()
    async with asgi_client(app) as c:
        assert (await c.get("/late")).status_code == 404

        @app.get("/late")
        async def late() -> dict[str, bool]:
            return {"late": True}

        assert (await c.get("/late")).json() == {"late": True}
