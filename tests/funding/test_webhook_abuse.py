"""Webhooks are cheap to send and must stay cheap to refuse (issue 12 item 10): limited per
source before any outbound call, and Plaid's verification keys cached (unknown kids too)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from pull import devstack
from pull.app import create_app
from pull.funding.providers import signing
from pull.funding.providers.base import PlaidError
from pull.funding.providers.keycache import UnknownKey, WebhookKeyCache
from pull.kit.ratelimit import LIMITS, RateClass
from tests.conftest import AppRunner, Services, make_settings, random_client_ip
from tests.funding.conftest import serve
from tests.funding.fake_plaid import CLIENT_ID, SECRET, FakePlaid

BODY = json.dumps({"webhook_type": "ITEM", "webhook_code": "WEBHOOK_UPDATE_ACKNOWLEDGED"}).encode()


@pytest.fixture
async def plaid_app(services: Services) -> AsyncIterator[tuple[FakePlaid, FastAPI]]:
    """The API with the real Plaid client, talking to a local fake of Plaid's HTTP API."""
    fake = FakePlaid()
    async with serve(fake.app(), devstack.free_port()) as url:  # type: ignore[arg-type]
        app = create_app(
            make_settings(
                services, PLAID_CLIENT_ID=CLIENT_ID, PLAID_SECRET=SECRET, PLAID_BASE_URL=url
            )
        )
        async with AppRunner(app):
            yield fake, app


def _from(app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def _signed_with_kid(fake: FakePlaid, kid: str, body: bytes = BODY) -> dict[str, str]:
    claims = {"iat": int(time.time()), "request_body_sha256": signing.body_sha256(body)}
    token = jwt.encode(claims, fake.key, algorithm="ES256", headers={"kid": kid})
    return {"Content-Type": "application/json", signing.HEADER: token}


def _key_fetches(fake: FakePlaid) -> int:
    return sum(1 for path, _, _ in fake.requests if path == "/webhook_verification_key/get")


async def test_unknown_kids_are_cached_negatively_and_keys_are_cached(
    plaid_app: tuple[FakePlaid, FastAPI],
) -> None:
    fake, app = plaid_app
    async with _from(app, random_client_ip()) as c:
        for _ in range(5):
            r = await c.post(
                "/webhooks/plaid", content=BODY, headers=_signed_with_kid(fake, "no-such-kid")
            )
            assert (r.status_code, r.json()["error"]["code"]) == (401, "INVALID_WEBHOOK_SIGNATURE")
        assert _key_fetches(fake) == 1  # Plaid was asked once, then the answer was cached
        for _ in range(3):
            r = await c.post(
                "/webhooks/plaid", content=BODY, headers=_signed_with_kid(fake, fake.jwk["kid"])
            )
            assert r.status_code == 200, r.text
        assert _key_fetches(fake) == 2


async def test_webhooks_are_limited_per_source_before_any_outbound_call(
    plaid_app: tuple[FakePlaid, FastAPI],
) -> None:
    fake, app = plaid_app
    limit = LIMITS[RateClass.webhook].amount
    attacker, plaid = random_client_ip(), random_client_ip()
    async with _from(app, attacker) as c:
        # Distinct made-up kids, one lookup each, until the limit answers (a sliding window: on
        # a slow machine a few early requests may have aged out, so count rather than assume).
        refused = 0
        for _ in range(2 * limit):
            r = await c.post(
                "/webhooks/plaid", content=BODY, headers=_signed_with_kid(fake, uuid.uuid4().hex)
            )
            if r.status_code == 429:
                break
            assert r.status_code == 401, r.text
            refused += 1
        assert refused >= limit
        assert (r.status_code, r.json()["error"]["code"]) == (429, "RATE_LIMITED")
        assert r.json()["error"]["details"]["class"] == "webhook"
        assert _key_fetches(fake) == refused  # the limited one never reached Plaid
        # The KYC providers' webhooks share the per-source budget.
        r = await c.post("/webhooks/persona", content=b"{}")
        assert r.status_code == 429
    async with _from(app, plaid) as c:  # another source is not affected
        r = await c.post(
            "/webhooks/plaid", content=BODY, headers=_signed_with_kid(fake, fake.jwk["kid"])
        )
        assert r.status_code == 200, r.text


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_key_cache_keeps_keys_until_their_expiry_and_unknown_kids_briefly() -> None:
    clock = _Clock()
    cache = WebhookKeyCache(ttl=3600, negative_ttl=300, max_entries=3, clock=clock)
    calls: list[str] = []
    expiring = {"kid": "k1", "expired_at": None}

    async def fetch(kid: str) -> dict[str, Any]:
        calls.append(kid)
        if kid.startswith("k"):
            return dict(expiring) if kid == "k1" else {"kid": kid, "expired_at": None}
        raise PlaidError("no such key", status_code=400)

    async def down(kid: str) -> dict[str, Any]:
        calls.append(kid)
        raise PlaidError("Plaid unreachable")  # 502: not cached

    assert (await cache.get("k1", fetch))["kid"] == "k1"
    await cache.get("k1", fetch)
    assert calls == ["k1"]
    clock.now += 3601  # the TTL passed: asked again
    expiring["expired_at"] = clock.now + 10  # Plaid says it expires in 10 s
    await cache.get("k1", fetch)
    assert calls == ["k1", "k1"]
    clock.now += 5
    await cache.get("k1", fetch)
    assert len(calls) == 2  # cached until its expiry...
    clock.now += 6
    await cache.get("k1", fetch)
    assert len(calls) == 3  # ...then looked up again
    with pytest.raises(PlaidError):
        await cache.get("bogus", fetch)  # Plaid's own answer
    for _ in range(3):
        with pytest.raises(UnknownKey):
            await cache.get("bogus", fetch)  # remembered
    assert calls.count("bogus") == 1
    clock.now += 301
    with pytest.raises(PlaidError):
        await cache.get("bogus", fetch)
    assert calls.count("bogus") == 2
    for _ in range(2):
        with pytest.raises(PlaidError):
            await cache.get("k-outage", down)
    assert calls.count("k-outage") == 2  # an outage is not remembered
    for kid in ("k2", "k3", "k4", "k5"):
        await cache.get(kid, fetch)
    assert len(cache) == 3  # bounded, least recently used out
