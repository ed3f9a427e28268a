"""Catalog and redemption over HTTP, fulfilled by the RedemptionWorkflow on a real worker."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from pull.ledger.service import get_balance
from pull.rewards import sold_out
from tests.conftest import UserFactory
from tests.rewards.conftest import RewardsEnv

ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "IL",
    "postal_code": "62701",
    "country": "US",
}


async def test_cash_credit_redemption_pays_cash_through_the_ledger(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await rw.grant(user, 1_500)
    item = await rw.item(name="$5 cash", kind="cash_credit", points_price=500, stock=10)
    r = await rw.http.get("/api/v1/rewards/catalog", headers=user.headers)
    assert r.status_code == 200 and [i["id"] for i in r.json()["items"]] == [item["id"]]

    key = str(uuid.uuid4())
    r = await rw.redeem(user, item["id"], quantity=2, key=key)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["status"] == "pending" and first["points"] == 1000 and first["cash_cents"] == 1000
    again = await rw.redeem(user, item["id"], quantity=2, key=key)
    assert again.status_code == 201 and again.json()["id"] == first["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    body = await rw.balance(user)
    assert body["available"] == 500 and body["pending"] == 1000

    async with rw.worker():
        done = await rw.wait_redemption(user, first["id"], "fulfilled")
    assert done["status"] == "fulfilled"
    body = await rw.balance(user)
    assert body["available"] == 500 and body["pending"] == 0
    assert body["lifetime_redeemed"] == 1000
    async with rw.maker() as s:
        cash = await get_balance(session=s, user_id=user.id)
    assert cash.available == 1000
    r = await rw.http.get("/api/admin/rewards/catalog", headers=rw.admin.headers)
    assert r.json()["items"][0]["stock"] == 8
    r = await rw.http.get("/api/v1/rewards/redemptions?limit=1", headers=user.headers)
    assert r.status_code == 200 and r.json()["items"][0]["id"] == first["id"]
    other = await user_factory()
    r = await rw.http.get(f"/api/v1/rewards/redemptions/{first['id']}", headers=other.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "REDEMPTION_NOT_FOUND"
    r = await rw.http.get("/api/v1/rewards/redemptions?cursor=bad", headers=user.headers)
    assert r.status_code == 400
    refund = await rw.http.post(
        f"/api/admin/rewards/redemptions/{first['id']}/refund", headers=rw.admin.headers
    )
    assert refund.status_code == 409  # a cash credit is not refunded in points
    await rw.assert_books()


async def test_redeem_errors(rw: RewardsEnv, user_factory: UserFactory) -> None:
    user = await user_factory()
    await rw.grant(user, 100)
    cheap = await rw.item(name="Sticker", kind="physical", points_price=50, stock=1)
    dear = await rw.item(name="Card", kind="sweepstakes", points_price=1_000)
    later = await rw.item(
        name="Later",
        kind="sweepstakes",
        points_price=1,
        starts_at=(dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat(),
    )

    r = await rw.redeem(user, dear["id"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "INSUFFICIENT_POINTS"
    r = await rw.redeem(user, str(uuid.uuid4()))
    assert r.status_code == 404 and r.json()["error"]["code"] == "REWARD_NOT_FOUND"
    r = await rw.redeem(user, later["id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "REWARD_INACTIVE"
    r = await rw.redeem(user, cheap["id"])
    assert r.status_code == 422  # a physical item needs its shipping address
    r = await rw.redeem(user, cheap["id"], shipping_address=ADDRESS)
    assert r.status_code == 201, r.text
    r = await rw.redeem(user, cheap["id"], shipping_address=ADDRESS)
    assert r.status_code == 409 and r.json()["error"]["code"] == "OUT_OF_STOCK"
    assert (await rw.balance(user))["available"] == 50  # the refused one held nothing
    r = await rw.http.post(
        "/api/v1/rewards/redeem", json={"reward_id": cheap["id"]}, headers=user.headers
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "IDEMPOTENCY_KEY_REQUIRED"
    r = await rw.redeem(user, cheap["id"], quantity=0)
    assert r.status_code == 422

    r = await rw.http.patch(
        f"/api/admin/rewards/catalog/{dear['id']}", json={"active": False}, headers=rw.admin.headers
    )
    assert r.status_code == 200 and r.json()["active"] is False
    r = await rw.redeem(user, dear["id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "REWARD_INACTIVE"
    r = await rw.http.post(
        f"/api/admin/rewards/catalog/{cheap['id']}/stock",
        json={"delta": 5},
        headers=rw.admin.headers,
    )
    assert r.status_code == 200 and r.json()["stock"] == 5
    r = await rw.http.post(
        f"/api/admin/rewards/catalog/{cheap['id']}/stock",
        json={"delta": -6},
        headers=rw.admin.headers,
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "STOCK_NEGATIVE"
    r = await rw.http.post(
        f"/api/admin/rewards/catalog/{dear['id']}/stock",
        json={"delta": 1},
        headers=rw.admin.headers,
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "UNLIMITED_STOCK"
    await rw.assert_books()


async def test_declined_gift_card_voids_the_hold_and_restores_stock_and_lots(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await rw.grant(user, 300)
    bad = await rw.item(
        name="Bad card",
        kind="gift_card",
        points_price=200,
        stock=3,
        provider_product_id="sandbox-decline",
        face_value_cents=2_000,
    )
    good = await rw.item(
        name="Good card",
        kind="gift_card",
        points_price=100,
        stock=3,
        provider_product_id="AMAZON-US",
        face_value_cents=1_000,
    )
    r1 = await rw.redeem(user, bad["id"])
    r2 = await rw.redeem(user, good["id"])
    assert r1.status_code == 201 and r2.status_code == 201
    async with rw.worker():
        failed = await rw.wait_redemption(user, r1.json()["id"], "failed")
        ok = await rw.wait_redemption(user, r2.json()["id"], "fulfilled")
    assert "declined" in failed["failure_reason"]
    assert ok["provider_ref"].startswith("SBX") and ok["delivery"]["order_status"] == "EXECUTED"
    assert (await rw.balance(user))["available"] == 200
    items = {
        i["id"]: i["stock"]
        for i in (await rw.http.get("/api/admin/rewards/catalog", headers=rw.admin.headers)).json()[
            "items"
        ]
    }
    assert items[bad["id"]] == 3 and items[good["id"]] == 2
    async with rw.maker() as s:
        remaining = (await s.execute(text("SELECT remaining FROM rewards_lots"))).scalar_one()
    assert remaining == 200

    refund = await rw.http.post(
        f"/api/admin/rewards/redemptions/{ok['id']}/refund", headers=rw.admin.headers
    )
    assert refund.status_code == 200 and refund.json()["status"] == "refunded"
    assert (await rw.balance(user))["available"] == 300
    async with rw.maker() as s:
        remaining = (await s.execute(text("SELECT remaining FROM rewards_lots"))).scalar_one()
    assert remaining == 300  # back into the original lot
    await rw.assert_books()


async def test_concurrent_redemptions_never_oversell(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    users = [await user_factory() for _ in range(12)]
    for u in users:
        await rw.grant(u, 100)
    item = await rw.item(name="Hoodie", kind="sweepstakes", points_price=100, stock=5)
    results = await asyncio.gather(*(rw.redeem(u, item["id"]) for u in users))
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 5 and codes.count(409) == 7, [r.text for r in results]
    r = await rw.http.get("/api/admin/rewards/catalog", headers=rw.admin.headers)
    assert r.json()["items"][0]["stock"] == 0
    await rw.assert_books()


async def test_sold_out_is_answered_at_once_and_a_restock_lifts_it(
    rw: RewardsEnv, user_factory: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the last unit, the process refuses the item without database work (nothing is
    written for the refused ones); an admin restock lifts that at once (the stock generation
    moved: the marks' own age limit is out of the way here)."""
    monkeypatch.setattr(sold_out, "MAX_AGE", 3_600.0)
    first, late = await user_factory(), await user_factory()
    for u in (first, late):
        await rw.grant(u, 100)
    item = await rw.item(name="Last one", kind="sweepstakes", points_price=100, stock=1)
    assert (await rw.redeem(first, item["id"])).status_code == 201
    for _ in range(3):
        r = await rw.redeem(late, item["id"])
        assert r.status_code == 409 and r.json()["error"]["code"] == "OUT_OF_STOCK", r.text
    async with rw.maker() as s:
        keys = await s.scalar(
            text(
                "SELECT count(*) FROM idempotency_keys WHERE owner = :o "
                "AND scope = 'POST /api/v1/rewards/redeem'"
            ),
            {"o": str(late.id)},
        )
    assert keys == 0
    r = await rw.http.post(
        f"/api/admin/rewards/catalog/{item['id']}/stock",
        json={"delta": 1},
        headers=rw.admin.headers,
    )
    assert r.status_code == 200, r.text
    r = await rw.redeem(late, item["id"])
    assert r.status_code == 201, r.text
    assert (await rw.balance(late))["available"] == 0
    await rw.assert_books()


async def test_a_buyer_refused_as_sold_out_builds_no_database_session(
    rw: RewardsEnv, user_factory: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race's 900 losers cost what a cached read costs: no session built, exited and
    closed for a buyer the sold-out mark refuses."""
    monkeypatch.setattr(sold_out, "MAX_AGE", 3_600.0)
    first, late = await user_factory(), await user_factory()
    for u in (first, late):
        await rw.grant(u, 100)
    item = await rw.item(name="Only one", kind="sweepstakes", points_price=100, stock=1)
    assert (await rw.redeem(first, item["id"])).status_code == 201
    r = await rw.redeem(late, item["id"])  # finds it sold out in the database: marks it
    assert r.status_code == 409, r.text
    state = rw.app.state
    real = state.sessionmaker
    opened = 0

    def counting(*args: Any, **kw: Any) -> Any:
        nonlocal opened
        opened += 1
        return real(*args, **kw)

    state.sessionmaker = counting  # (starlette's State: monkeypatch cannot undo it)
    try:
        for _ in range(4):
            r = await rw.redeem(late, item["id"])
            assert r.status_code == 409 and r.json()["error"]["code"] == "OUT_OF_STOCK", r.text
    finally:
        state.sessionmaker = real
    assert opened == 0
    await rw.assert_books()


async def test_stock_given_back_by_a_failed_redemption_lifts_sold_out_at_once(
    rw: RewardsEnv, user_factory: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's failed fulfilment gives the unit back and moves the item's stock
    generation before its activity returns: the next buyer gets it at once, never a stale
    OUT_OF_STOCK while stock remains (with the marks' age limit out of the way)."""
    monkeypatch.setattr(sold_out, "MAX_AGE", 3_600.0)
    first, late = await user_factory(), await user_factory()
    for u in (first, late):
        await rw.grant(u, 200)
    item = await rw.item(
        name="Last card",
        kind="gift_card",
        points_price=200,
        stock=1,
        provider_product_id="sandbox-decline",
        face_value_cents=2_000,
    )
    r = await rw.redeem(first, item["id"])
    assert r.status_code == 201, r.text
    for _ in range(2):  # the second from the mark
        refused = await rw.redeem(late, item["id"])
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "OUT_OF_STOCK"
    async with rw.worker():
        await rw.wait_redemption(first, r.json()["id"], "failed")
    again = await rw.redeem(late, item["id"])
    assert again.status_code == 201, again.text
    await rw.assert_books()
