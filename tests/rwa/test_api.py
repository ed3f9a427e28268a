"""The RWA HTTP API without the worker: reads, filters and cursors, admin terms and four-eyes,
and every refusal of a subscription (in the error envelope, never a 5xx)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import uuid
from typing import Any

from pull.identity import service as identity
from tests.rwa.conftest import RwaEnv, RwaEnvFactory


async def _open(env: RwaEnv, **terms: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    asset = await env.create_asset()
    offering = await env.create_offering(asset["id"], closes_at=_later(600), **terms)
    await env.open_offering(offering["id"])
    return asset, offering


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _later(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()


async def test_assets_list_filter_search_detail_and_cursor(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env()
    admin = await env.admin(0)
    made = [
        await env.create_asset(title=f"Air Jordan 1 Chicago #{i}", category="sneaker")
        for i in range(3)
    ]
    comic = await env.create_asset(title="Amazing Fantasy 15", category="comic")
    r = await env.http.post(
        f"/api/admin/rwa/assets/{comic['id']}/valuations",
        json={"kind": "appraisal", "value_cents": 1_200_000, "source": "Heritage"},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    await env.http.post(
        f"/api/admin/rwa/assets/{comic['id']}/valuations",
        json={
            "kind": "comparable_sale",
            "value_cents": 1_300_000,
            "source": "Goldin",
            "as_of": _later(-1),
        },
        headers=admin.headers,
    )
    investor = await env.investor()
    page = await env.get("/api/v1/rwa/assets?category=sneaker&limit=2", investor)
    assert len(page["items"]) == 2 and page["cursor"]
    rest = await env.get(f"/api/v1/rwa/assets?category=sneaker&cursor={page['cursor']}", investor)
    ids = [a["id"] for a in page["items"] + rest["items"]]
    assert sorted(ids) == sorted(a["id"] for a in made) and rest["cursor"] is None
    found = await env.get("/api/v1/rwa/search?q=fantasy", investor)
    assert [a["id"] for a in found["items"]] == [comic["id"]]
    by_cert = await env.get(f"/api/v1/rwa/search?q={comic['certificate']['cert_number']}", investor)
    assert [a["id"] for a in by_cert["items"]] == [comic["id"]]
    assert (await env.get("/api/v1/rwa/search?q=%25_", investor))["items"] == []
    detail = await env.get(f"/api/v1/rwa/assets/{comic['id']}", investor)
    assert detail["valuation_cents"] == 1_200_000  # the latest by as_of
    assert [v["kind"] for v in detail["valuations"]] == ["appraisal", "comparable_sale"]
    drafts = await env.get("/api/v1/rwa/assets?state=draft", investor)
    assert len(drafts["items"]) == 4
    for path, code in [
        (f"/api/v1/rwa/assets/{uuid.uuid4()}", 404),
        ("/api/v1/rwa/assets/not-a-uuid", 422),
        ("/api/v1/rwa/assets?cursor=%%%", 400),
        (
            "/api/v1/rwa/assets?cursor="
            + _cursor({"t": "2026-01-01T00:00:00", "id": str(uuid.uuid4())}),
            400,
        ),
        ("/api/v1/rwa/subscriptions?cursor=" + _cursor({"t": 5, "id": "x"}), 400),
        ("/api/v1/rwa/orders?cursor=" + _cursor(["x"]), 400),
        (f"/api/v1/rwa/assets/{comic['id']}/trades?cursor=" + _cursor({"id": 2**70}), 400),
        (f"/api/v1/rwa/assets/{comic['id']}/trades?cursor=" + _cursor({"id": "1"}), 400),
        (f"/api/v1/rwa/assets/{comic['id']}/candles?end=0001-01-01T00:00:00Z", 400),
        (
            f"/api/v1/rwa/assets/{comic['id']}/candles?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
            400,
        ),
        (f"/api/v1/rwa/assets/{comic['id']}/candles?interval=5m", 422),
        (f"/api/v1/rwa/assets/{comic['id']}/orderbook?depth=0", 422),
        (f"/api/v1/rwa/assets/{uuid.uuid4()}/orderbook", 404),
        (f"/api/v1/rwa/buyouts/{uuid.uuid4()}", 404),
        (f"/api/v1/rwa/orders/{uuid.uuid4()}", 404),
        ("/api/v1/rwa/assets?limit=0", 400),
        ("/api/v1/rwa/assets?state=melted", 422),
        ("/api/v1/rwa/search", 422),
        (f"/api/v1/rwa/offerings/{uuid.uuid4()}", 404),
    ]:
        r = await env.http.get(path, headers=investor.headers)
        assert r.status_code == code, (path, r.text)
        assert "error" in r.json()
    assert (await env.http.get("/api/v1/rwa/assets")).status_code == 401


async def test_offering_terms_four_eyes_and_states(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env()
    admin = await env.admin(0)
    asset = await env.create_asset()
    base = {
        "total_shares": 100,
        "price_cents": 1000,
        "opens_at": _later(-5),
        "closes_at": _later(600),
        "min_raise_cents": 50_000,
    }
    path = f"/api/admin/rwa/assets/{asset['id']}/offerings"
    for bad in (
        {"closes_at": _later(-10)},
        {"min_raise_cents": 100_001},
        {"total_shares": 0},
        {"price_cents": -1},
        {"max_per_investor_bps": 10_001},
        {"kyc_tier": "platinum"},
        {"opens_at": "2026-13-01T00:00:00Z"},
        {"opens_at": "2026-12-01T00:00:00"},  # no time zone
    ):
        r = await env.http.post(path, json={**base, **bad}, headers=admin.headers)
        assert r.status_code == 422, (bad, r.text)
    r = await env.http.post(path, json=base, headers=admin.headers)
    assert r.status_code == 201
    offering = r.json()
    again = await env.http.post(path, json=base, headers=admin.headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "INVALID_STATE"
    own = await env.http.post(
        f"/api/admin/rwa/offerings/{offering['id']}/open", headers=admin.headers
    )
    assert own.status_code == 403 and own.json()["error"]["code"] == "FOUR_EYES_REQUIRED"
    opened = await env.open_offering(offering["id"])
    assert opened["status"] == "open"
    assert (await env.get(f"/api/v1/rwa/assets/{asset['id']}"))["state"] == "offering"
    twice = await env.http.post(
        f"/api/admin/rwa/offerings/{offering['id']}/open", headers=(await env.admin(1)).headers
    )
    assert twice.status_code == 409
    async with env.maker() as s:
        entries = await identity.audit_entries(session=s, limit=100)
    actions = {(e["action"], e["actor_id"]) for e in entries}
    second = (await env.admin(1)).id
    assert {
        ("rwa.asset.create", admin.id),
        ("rwa.offering.create", admin.id),
        ("rwa.offering.open", second),
    } <= actions


async def test_subscription_refusals_idempotency_and_purchase(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env()
    rich = await env.investor(cash=1_000_000)
    poor = await env.investor(cash=5_000)
    unverified = await env.investor(cash=1_000_000, tier="none")
    asset, offering = await _open(
        env, total_shares=100, price_cents=1000, min_raise_cents=10_000, max_per_investor_bps=3000
    )
    oid = offering["id"]
    key = str(uuid.uuid4())
    first = await env.subscribe(rich, oid, 20, key=key)
    assert first.status_code == 201, first.text
    replay = await env.subscribe(rich, oid, 20, key=key)
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    conflict = await env.subscribe(rich, oid, 21, key=key)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    no_key = await env.http.post(
        f"/api/v1/rwa/offerings/{oid}/subscribe", json={"shares": 1}, headers=rich.headers
    )
    assert no_key.json()["error"]["code"] == "IDEMPOTENCY_KEY_REQUIRED"
    over = await env.subscribe(rich, oid, 11)
    assert over.status_code == 409
    assert over.json()["error"] == {
        **over.json()["error"],
        "code": "INVESTOR_CAP_EXCEEDED",
        "details": {"cap": 30, "held": 20},
    }
    assert (await env.subscribe(rich, oid, 10)).status_code == 201
    broke = await env.subscribe(poor, oid, 6)
    assert broke.status_code == 409 and broke.json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    kyc = await env.subscribe(unverified, oid, 1)
    assert kyc.status_code == 403 and kyc.json()["error"]["code"] == "KYC_REQUIRED"
    assert kyc.json()["error"]["details"] == {"required_tier": "basic"}
    for shares in (0, -1, 10**10, "ten", 1.5):
        bad = await env.http.post(
            f"/api/v1/rwa/offerings/{oid}/subscribe",
            json={"shares": shares},
            headers={**rich.headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert bad.status_code == 422, (shares, bad.text)
    missing = await env.subscribe(rich, str(uuid.uuid4()), 1)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "OFFERING_NOT_FOUND"
    # fill the rest with other investors, then it is sold out
    others = [await env.investor(cash=100_000) for _ in range(3)]
    for user, shares in zip(others, (30, 30, 10), strict=True):
        r = await env.http.post(
            "/api/v1/rwa/purchase",
            json={"asset_id": asset["id"], "shares": shares},
            headers={**user.headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 201, r.text
        assert r.json()["kind"] == "subscription"
    sold = await env.subscribe(others[2], oid, 1)
    assert sold.status_code == 409
    assert sold.json()["error"]["code"] == "OFFERING_SOLD_OUT"
    assert sold.json()["error"]["details"] == {"remaining": 0}
    live = await env.get(f"/api/v1/rwa/offerings/{oid}")
    assert live["shares_subscribed"] == 100 and live["shares_remaining"] == 0
    assert live["investors"] == 4
    assert (await env.balance(rich))["held"] == 30_000
    draft = await env.create_asset()
    r = await env.http.post(
        "/api/v1/rwa/purchase",
        json={"asset_id": draft["id"], "shares": 1},
        headers={**rich.headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "INVALID_STATE"
    await env.assert_books()


async def test_concurrent_subscriptions_never_oversubscribe(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env()
    users = [await env.investor(cash=100_000) for _ in range(12)]
    _, offering = await _open(
        env, total_shares=50, price_cents=100, min_raise_cents=100, max_per_investor_bps=2000
    )
    oid = offering["id"]
    # 12 users x 3 concurrent requests of 3 shares: 108 asked for, 50 on offer, cap 10 each
    responses = await asyncio.gather(*(env.subscribe(u, oid, 3) for u in users for _ in range(3)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {201, 409}, [r.text for r in responses if r.status_code not in (201, 409)]
    accepted = [r.json()["shares"] for r in responses if r.status_code == 201]
    live = await env.get(f"/api/v1/rwa/offerings/{oid}")
    assert sum(accepted) == live["shares_subscribed"] <= 50
    assert live["shares_subscribed"] >= 48  # only the last few 3-share asks can miss
    for user in users:
        subs = await env.get("/api/v1/rwa/subscriptions", user)
        assert sum(s["shares"] for s in subs["items"]) <= 10
        held = (await env.balance(user))["held"]
        assert held == 100 * sum(s["shares"] for s in subs["items"])
    assert await env.account(f"rwa.escrow:{oid}") == 0  # holds only reserve
    await env.assert_books()
