"""Earning through the outbox consumer, caps, rule versions, reversals, balance and history."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from tests.conftest import UserFactory
from tests.rewards.conftest import RewardsEnv


async def _deposit(rw: RewardsEnv, user_id: uuid.UUID, amount: int) -> str:
    deposit_id = str(uuid.uuid4())
    await rw.emit(
        "funding.deposit_settled",
        {"deposit_id": deposit_id, "user_id": str(user_id), "amount": amount},
    )
    return deposit_id


async def test_kyc_and_deposits_earn_by_rules_once_per_event(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    await rw.rule(
        key="kyc",
        event_type="kyc.approved",
        formula={"type": "fixed", "points": 500},
        qualifying=False,
        lifetime_cap=500,
    )
    await rw.rule(
        key="deposit",
        event_type="funding.deposit_settled",
        formula={"type": "per_unit", "field": "amount", "per": 100, "points": 1},
        daily_cap=150,
    )
    user = await user_factory()
    await rw.emit("kyc.approved", {"user_id": str(user.id), "tier": "basic"})
    await rw.emit("kyc.approved", {"user_id": str(user.id), "tier": "standard"})  # capped
    await _deposit(rw, user.id, 12_345)  # 123 points
    await _deposit(rw, user.id, 10_000)  # 100, capped to 27 by the daily cap
    await rw.drain()
    body = await rw.balance(user)
    assert body["available"] == 500 + 150
    assert body["lifetime_earned"] == 650
    assert body["qualifying_points"] == 150  # the KYC bonus is promotional
    assert body["tier"] == "bronze"
    assert body["next_tier"] == "silver" and body["points_to_next_tier"] == 850

    # Each event applies once, however often it is delivered.
    async with rw.maker() as s, s.begin():
        await s.execute(text("UPDATE outbox_events SET delivered_at = NULL"))
    await rw.drain()
    assert (await rw.balance(user))["available"] == 650

    r = await rw.http.get("/api/v1/rewards/history?limit=2", headers=user.headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert len(page["items"]) == 2 and page["cursor"]
    assert all(i["kind"].startswith("rewards_earn") for i in page["items"])
    r = await rw.http.get(f"/api/v1/rewards/history?cursor={page['cursor']}", headers=user.headers)
    assert [i["points"] for i in r.json()["items"]] == [500]
    bad = await rw.http.get("/api/v1/rewards/history?cursor=%%%", headers=user.headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_CURSOR"
    await rw.assert_books()


async def test_rule_change_is_a_new_version_and_never_rewrites_history(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    rule = await rw.rule(
        key="trades",
        event_type="exchange.trade",
        formula={"type": "per_unit", "field": "contracts", "per": 1, "points": 2},
    )
    taker, maker = await user_factory(), await user_factory()
    trade = {
        "ticker": "T",
        "order_id": "o1",
        "user_id": str(taker.id),
        "fills": [
            {"count": 5, "yes_price": 40, "maker_user_id": str(maker.id), "maker_order_id": "m1"}
        ],
    }
    await rw.emit("exchange.trade", trade)
    await rw.drain()
    assert (await rw.balance(taker))["available"] == 10
    assert (await rw.balance(maker))["available"] == 10

    r = await rw.http.put(
        "/api/admin/rewards/rules/trades",
        json={
            "event_type": "exchange.trade",
            "formula": {"type": "per_unit", "field": "contracts", "per": 1, "points": 1},
        },
        headers=rw.admin.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2
    await rw.emit("exchange.trade", {**trade, "order_id": "o2"})
    await rw.drain()
    assert (await rw.balance(taker))["available"] == 15
    r = await rw.http.get("/api/admin/rewards/rules?key=trades", headers=rw.admin.headers)
    versions = r.json()["items"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["superseded_at"] is not None
    async with rw.maker() as s:
        rule_ids = (
            (
                await s.execute(
                    text("SELECT rule_id FROM rewards_lots WHERE user_id = :u ORDER BY id"),
                    {"u": taker.id},
                )
            )
            .scalars()
            .all()
        )
    assert rule_ids[0] == rule["id"] and rule_ids[1] == versions[1]["id"]

    r = await rw.http.get("/api/admin/rewards/rules", headers=rw.admin.headers)
    assert [x["version"] for x in r.json()["items"]] == [2]
    missing = await rw.http.put(
        "/api/admin/rewards/rules/nope",
        json={"event_type": "kyc.approved", "formula": {"type": "fixed", "points": 1}},
        headers=rw.admin.headers,
    )
    assert missing.status_code == 404
    bad = await rw.http.post(
        "/api/admin/rewards/rules",
        json={
            "key": "bad",
            "event_type": "kyc.approved",
            "formula": {"type": "per_unit", "field": "amount", "per": 1, "points": 1},
        },
        headers=rw.admin.headers,
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "INVALID_RULE"
    user = await user_factory()
    r = await rw.http.get("/api/admin/rewards/rules", headers=user.headers)
    assert r.status_code == 403


async def test_returned_deposit_reverses_its_earning(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    await rw.rule(
        key="deposit",
        event_type="funding.deposit_settled",
        formula={"type": "per_unit", "field": "amount", "per": 100, "points": 1},
    )
    user = await user_factory()
    await rw.grant(user, 30)  # an older, promotional lot
    kept = await _deposit(rw, user.id, 5_000)
    returned = await _deposit(rw, user.id, 10_000)
    await rw.drain()
    assert (await rw.balance(user))["available"] == 30 + 50 + 100
    await rw.emit("funding.deposit_returned", {"deposit_id": returned, "user_id": str(user.id)})
    await rw.drain()
    body = await rw.balance(user)
    assert body["available"] == 80
    assert body["qualifying_points"] == 50
    assert kept
    await rw.assert_books()


async def test_reversal_of_spent_points_takes_from_other_lots_and_never_goes_negative(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await rw.emit(
        "funding.deposit_settled", {"deposit_id": "d1", "user_id": str(user.id), "amount": 100}
    )
    await rw.rule(
        key="deposit",
        event_type="funding.deposit_settled",
        formula={"type": "fixed", "points": 100},
    )
    await rw.emit(
        "funding.deposit_settled", {"deposit_id": "d2", "user_id": str(user.id), "amount": 100}
    )
    await rw.drain()
    assert (await rw.balance(user))["available"] == 100  # d1 came before the rule existed
    await rw.grant(user, 40)
    r = await rw.http.post(
        "/api/admin/rewards/adjustments",
        json={"user_id": str(user.id), "points": -120, "reason": "spent"},
        headers=rw.admin.headers,
    )
    assert r.status_code == 201 and r.json()["applied_points"] == -120
    r = await rw.http.post(
        "/api/admin/rewards/reversals", json={"source_ref": "deposit:d2"}, headers=rw.admin.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [{"lot_id": 1, "taken": 20, "unrecovered": 80}]
    assert (await rw.balance(user))["available"] == 0
    await rw.assert_books()
