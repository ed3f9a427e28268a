"""Every admin route requires an administrator with two-factor authentication on
(issue 12 item 9), found by walking the app's routes for the AdminUser dependency."""

from __future__ import annotations

import re
import uuid

import httpx
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from pull.identity.deps import require_admin
from tests.conftest import UserFactory, enable_totp


def _needs_admin(dependant: Dependant) -> bool:
    return any(d.call is require_admin or _needs_admin(d) for d in dependant.dependencies)


def admin_routes(app: FastAPI) -> list[tuple[str, str]]:
    found = []
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if isinstance(route, APIRoute) and _needs_admin(route.dependant):
            found.extend((method, str(ctx.path)) for method in sorted(ctx.methods or ()))
    return found


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


async def test_every_admin_route_requires_two_factor(
    app: FastAPI, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    routes = admin_routes(app)
    paths = {p for _, p in routes}
    # The ones the review named are among them (the walk finds new ones by itself).
    assert {
        "/api/admin/withdrawals/{withdrawal_id}/approve",
        "/api/admin/kyc/{user_id}/approve",
        "/api/admin/markets/{ticker}/resolve",
    } <= paths, paths
    no_2fa = await user_factory(admin=True, totp=False)
    plain = await user_factory()
    for method, path in routes:
        url = _fill(path)
        r = await client.request(method, url, headers=no_2fa.headers, json={})
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["code"] == "ADMIN_2FA_REQUIRED", (method, path)
        r = await client.request(method, url, headers=plain.headers, json={})
        assert (r.status_code, r.json()["error"]["code"]) == (403, "FORBIDDEN"), (method, path)
    # The same admin, once 2FA is on through the real endpoints, gets past the guard.
    await enable_totp(client, no_2fa.headers)
    method, path = next((m, p) for m, p in routes if m == "GET")
    r = await client.request(method, _fill(path), headers=no_2fa.headers)
    assert r.status_code != 403, (method, path, r.text)
