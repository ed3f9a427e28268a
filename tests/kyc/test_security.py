"""Security: forged and stale webhook signatures change nothing, a user reaches only their own
KYC data, PII is encrypted at rest, masked for its owner and absent from logs."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.kit.crypto import FieldCipher
from pull.kit.logging import JsonFormatter
from pull.kit.outbox import OutboxEvent
from pull.kyc.models import KycWebhookEvent
from pull.kyc.providers import signing
from pull.kyc.providers.sandbox import checkr_event, parallel_event, persona_event
from tests.conftest import UserFactory
from tests.kyc.conftest import (
    KycEnvFactory,
    checkr_headers,
    dumps,
    parallel_headers,
    persona_headers,
)


def env_cipher(env: Any) -> FieldCipher:
    return FieldCipher(env.settings.field_encryption_keys)


async def _nothing_stored(maker: async_sessionmaker[AsyncSession]) -> None:
    async with maker() as s:
        assert await s.scalar(select(func.count()).select_from(KycWebhookEvent)) == 0
        signals = await s.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.payload["signal"].astext == "provider_event")
        )
        assert signals == 0


async def _waiting_inquiry(env: Any, user: Any) -> dict[str, Any]:
    async with env.worker():
        body: dict[str, Any] = await env.wait_for(user, lambda b: b["inquiry_id"] is not None)
    return body


async def test_forged_or_stale_persona_webhooks_are_refused(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = await kyc_env()
    user = await user_factory()
    assert (await env.start(user, last_name="Abandon")).status_code == 202
    body = await _waiting_inquiry(env, user)
    payload = dumps(
        persona_event(
            "inquiry.approved",
            inquiry_id=body["inquiry_id"],
            reference_id=body["application"]["id"],
        )
    )
    forged = {
        "Content-Type": "application/json",
        signing.PERSONA_HEADER: signing.persona_signature("not-the-secret", payload),
    }
    stale = persona_headers(env.settings, payload, timestamp=int(time.time()) - 310)
    future = persona_headers(env.settings, payload, timestamp=int(time.time()) + 310)
    tampered = persona_headers(env.settings, payload)
    for headers, content in [
        (forged, payload),
        (stale, payload),
        (future, payload),
        (tampered, payload.replace(b"approved", b"declined")),
        ({"Content-Type": "application/json"}, payload),
    ]:
        r = await env.http.post("/webhooks/persona", content=content, headers=headers)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "INVALID_SIGNATURE"
    await _nothing_stored(sessionmaker)
    assert (await env.status(user))["status"] == "in_progress"


async def test_forged_checkr_and_parallel_markets_webhooks_are_refused(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    checkr = dumps(checkr_event("rep_1", status="clear"))
    pm = dumps(parallel_event("acc_1", status="current"))
    cases = [
        ("/webhooks/checkr", checkr, {signing.CHECKR_HEADER: signing.hex_hmac("nope", checkr)}),
        ("/webhooks/checkr", checkr, {}),
        ("/webhooks/parallel-markets", pm, {signing.PARALLEL_HEADER: "00" * 32}),
        ("/webhooks/parallel-markets", pm, {}),
    ]
    for path, content, headers in cases:
        r = await client.post(path, content=content, headers=headers)
        assert r.status_code == 401, (path, r.text)
    await _nothing_stored(sessionmaker)


async def test_correctly_signed_but_unknown_or_malformed_events_store_nothing(
    client: httpx.AsyncClient, app: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    settings = app.state.settings
    unknown = dumps(checkr_event("rep_unknown", status="clear"))
    r = await client.post(
        "/webhooks/checkr", content=unknown, headers=checkr_headers(settings, unknown)
    )
    assert r.status_code == 404  # the vendor will deliver again later
    assert r.json()["error"]["code"] == "UNKNOWN_SUBJECT"
    garbage = b"not json"
    r = await client.post(
        "/webhooks/parallel-markets", content=garbage, headers=parallel_headers(settings, garbage)
    )
    assert r.status_code == 422
    empty = dumps({"data": {}})
    r = await client.post(
        "/webhooks/persona", content=empty, headers=persona_headers(settings, empty)
    )
    assert r.status_code == 422
    await _nothing_stored(sessionmaker)


async def test_users_reach_only_their_own_kyc_data(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = await kyc_env()
    owner, other = await user_factory(), await user_factory()
    assert (await env.start(owner, last_name="Abandon")).status_code == 202
    mine = await env.status(owner)
    assert mine["application"]["pii"]["last_name"] == "A******"
    theirs = await env.status(other)
    assert theirs["status"] == "none" and theirs["application"] is None
    assert (await env.http.post("/api/v1/kyc/cancel", headers=other.headers)).status_code == 409
    assert (await env.status(owner))["status"] == "pending"
    for method, path in [
        ("GET", "/api/admin/kyc/reviews"),
        ("POST", f"/api/admin/kyc/{owner.id}/approve"),
        ("POST", f"/api/admin/kyc/{owner.id}/reject"),
    ]:
        body = {"tier": "accredited", "note": "x", "reason": "x"}
        r = await env.http.request(method, path, json=body, headers=other.headers)
        assert r.status_code == 403, (path, r.text)
        r = await env.http.request(method, path, json=body, headers=owner.headers)
        assert r.status_code == 403, (path, r.text)
    for path in ["/api/v1/kyc/status", "/api/v1/kyc/limits"]:
        assert (await env.http.get(path)).status_code == 401
    assert (await env.http.post("/api/v1/kyc/start", json={})).status_code == 401


async def test_pii_is_encrypted_at_rest_and_masked_for_its_owner(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
    pii_values: list[str],
) -> None:
    env = await kyc_env()
    user = await user_factory()
    r = await env.start(user, target_tier="enhanced", ssn_last4="4321")
    assert r.status_code == 202
    async with env.worker():
        body = await env.wait_status(user, "approved", "declined", "manual_review")
    assert body["status"] == "approved"
    pii = body["application"]["pii"]
    assert pii == {
        "first_name": "A***",
        "last_name": "L*******",
        "dob": "1985-**-**",
        "address": "12**********************, S**********, IL 62***",
        "phone": "**********11",
        "ssn_last4": "****",
    }
    async with sessionmaker() as s:
        for table in ("kyc_applications", "kyc_webhook_events", "outbox_events", "audit_log"):
            rows = (await s.execute(text(f"SELECT * FROM {table}"))).all()
            dump = repr(rows)
            for value in pii_values:
                assert value not in dump, (table, value)
        ssn = (await s.execute(text("SELECT ssn_last4_enc FROM kyc_applications"))).scalar_one()
    assert ssn and ssn != "4321" and len(ssn) > 50
    assert env_cipher(env).decrypt(ssn) == "4321"


async def test_pii_never_reaches_the_logs(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    caplog: pytest.LogCaptureFixture,
    pii_values: list[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    env = await kyc_env()
    user = await user_factory()
    bad = await env.start(user, target_tier="enhanced")  # a 422 echoes no input either
    assert bad.status_code == 422
    r = await env.start(user, target_tier="enhanced", ssn_last4="4321")
    assert r.status_code == 202
    async with env.worker():
        body = await env.wait_status(user, "approved", "declined", "manual_review")
    assert body["status"] == "approved"
    formatter = JsonFormatter()
    records = caplog.records
    assert records, "expected some log output from the flow"
    text_out = "\n".join(formatter.format(rec) for rec in records)
    for value in pii_values:
        assert value not in text_out, value
    assert '"4321"' not in text_out and "ssn_last4=" not in text_out
