"""Tiers, daily streak, referrals, leaderboards, adjustments (four-eyes) and the jobs."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from sqlalchemy import text

from pull.rewards.models import RewardProfile
from pull.rewards.streaks import advance
from tests.conftest import DEFAULT_TEST_PASSWORD, TestUser, UserFactory
from tests.rewards.conftest import RewardsEnv


async def test_tier_rises_at_once_and_falls_one_step_per_review(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    user = await user_factory()
    r = await rw.http.post(
        "/api/admin/rewards/adjustments",
        json={"user_id": str(user.id), "points": 1_200, "reason": "goodwill", "qualifying": True},
        headers=rw.admin.headers,
    )
    assert r.status_code == 201 and r.json()["status"] == "applied"
    body = await rw.balance(user)
    assert body["tier"] == "silver" and body["tier_multiplier_bp"] == 11_000
    assert body["next_tier"] == "gold" and body["points_to_next_tier"] == 3_800

    # The multiplier is real: qualifying earnings are multiplied.
    await rw.rule(
        key="dep", event_type="funding.deposit_settled", formula={"type": "fixed", "points": 100}
    )
    await rw.emit("funding.deposit_settled", {"deposit_id": "x", "user_id": str(user.id)})
    await rw.drain()
    assert (await rw.balance(user))["available"] == 1_200 + 110

    async with rw.maker() as s, s.begin():
        await s.execute(
            text(
                "UPDATE rewards_profiles SET tier = 'platinum', "
                "tier_reviewed_at = now() - interval '40 days'"
            )
        )
    r = await rw.http.post("/api/admin/rewards/maintenance", headers=rw.admin.headers)
    assert r.status_code == 200 and r.json()["reviewed_profiles"] == 1
    assert (await rw.balance(user))["tier"] == "gold"  # one step, not straight to silver
    r = await rw.http.post("/api/admin/rewards/maintenance", headers=rw.admin.headers)
    assert r.json()["reviewed_profiles"] == 0  # not again within the period
    assert (await rw.balance(user))["tier"] == "gold"


def test_streak_rules() -> None:
    row = RewardProfile(user_id=uuid.uuid4(), tier="bronze", streak=0, streak_best=0, freezes=0)
    day = dt.date(2026, 1, 1)
    for i in range(7):
        advance(row, day + dt.timedelta(days=i), every=7, max_freezes=2)
    assert row.streak == 7 and row.freezes == 1
    used, streak = advance(row, day + dt.timedelta(days=8), every=7, max_freezes=2)
    assert (used, streak, row.freezes) == (1, 8, 0)  # a missed day covered by the freeze
    _, streak = advance(row, day + dt.timedelta(days=10), every=7, max_freezes=2)
    assert streak == 1 and row.streak_best == 8  # no freeze left: broken


async def test_daily_streak_over_http(rw: RewardsEnv, user_factory: UserFactory) -> None:
    user = await user_factory()
    r = await rw.http.put(
        "/api/v1/rewards/settings", json={"timezone": "Not/AZone"}, headers=user.headers
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "INVALID_TIMEZONE"
    r = await rw.http.put(
        "/api/v1/rewards/settings", json={"timezone": "Pacific/Kiritimati"}, headers=user.headers
    )
    assert r.status_code == 200 and r.json()["timezone"] == "Pacific/Kiritimati"
    r = await rw.http.put(
        "/api/v1/rewards/settings", json={"timezone": "Asia/Tokyo"}, headers=user.headers
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "TIMEZONE_CHANGE_TOO_SOON"
    local_today = dt.datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    async with rw.maker() as s, s.begin():
        await s.execute(
            text("UPDATE rewards_profiles SET streak = 6, streak_last_day = :d, freezes = 1"),
            {"d": local_today - dt.timedelta(days=2)},
        )
    r = await rw.http.post("/api/v1/rewards/daily-streak", headers=user.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["local_date"] == local_today.isoformat()
    assert body["streak"] == 7 and body["freezes_used"] == 1 and body["points"] == 10
    assert body["freezes"] == 1  # the 7th day earned a new one
    r = await rw.http.post("/api/v1/rewards/daily-streak", headers=user.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "ALREADY_CLAIMED"
    r = await rw.http.get("/api/v1/rewards/settings", headers=user.headers)
    assert r.json()["streak"] == 7
    assert (await rw.balance(user))["available"] == 10
    await rw.assert_books()


async def _register(rw: RewardsEnv, code: str) -> TestUser:
    email = f"ref-{uuid.uuid4().hex[:10]}@example.com"
    r = await rw.http.post(
        "/api/auth/register",
        json={"email": email, "password": DEFAULT_TEST_PASSWORD, "referral_code": code},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    return TestUser(
        id=uuid.UUID(body["user"]["id"]),
        email=email,
        password=DEFAULT_TEST_PASSWORD,
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )


async def test_referrals(rw: RewardsEnv, user_factory: UserFactory) -> None:
    referrer = await user_factory()
    r = await rw.http.get("/api/v1/rewards/referrals", headers=referrer.headers)
    assert r.status_code == 200
    code = r.json()["code"]
    good = await _register(rw, code)
    cheat = await _register(rw, code)
    small = await _register(rw, code)
    # The cheat uses the referrer's device.
    for u in (referrer, cheat):
        r = await rw.http.get(
            "/api/v1/rewards/balance", headers={**u.headers, "X-Device-Fingerprint": "dev-1"}
        )
        assert r.status_code == 200
    for u, amount in ((good, 5_000), (cheat, 5_000), (small, 500)):
        await rw.emit("kyc.approved", {"user_id": str(u.id), "tier": "basic"})
        await rw.emit(
            "funding.deposit_settled",
            {"deposit_id": str(uuid.uuid4()), "user_id": str(u.id), "amount": amount},
        )
    await rw.drain()
    r = await rw.http.get("/api/v1/rewards/referrals", headers=referrer.headers)
    body = r.json()
    states = {x["user_id"]: (x["status"], x["refusal_reason"]) for x in body["referees"]}
    assert states == {
        str(good.id): ("rewarded", None),
        str(cheat.id): ("refused", "same_device"),
        str(small.id): ("refused", "first_deposit_too_small"),
    }
    assert body["rewarded_this_year"] == 1
    assert (await rw.balance(referrer))["available"] == 500
    assert (await rw.balance(good))["available"] == 250
    assert (await rw.balance(cheat))["available"] == 0
    # Once only, however often the events come.
    await rw.emit(
        "funding.deposit_settled", {"deposit_id": "again", "user_id": str(good.id), "amount": 9_999}
    )
    await rw.drain()
    assert (await rw.balance(referrer))["available"] == 500
    await rw.assert_books()


async def test_leaderboard_from_events_agrees_with_the_ledger_rebuild(
    rw: RewardsEnv, user_factory: UserFactory, redis: Redis
) -> None:
    await rw.rule(
        key="dep",
        event_type="funding.deposit_settled",
        formula={"type": "per_unit", "field": "amount", "per": 100, "points": 1},
    )
    users = [await user_factory() for _ in range(3)]
    for u, amount in zip(users, (3_000, 10_000, 3_000), strict=True):
        await rw.emit(
            "funding.deposit_settled",
            {"deposit_id": str(uuid.uuid4()), "user_id": str(u.id), "amount": amount},
        )
    await rw.drain()
    await rw.drain()  # twice: the leaderboard counts each earning once
    r = await rw.http.get("/api/v1/rewards/leaderboard?period=weekly", headers=users[0].headers)
    assert r.status_code == 200, r.text
    board = r.json()
    assert [(e["rank"], e["points"]) for e in board["items"]] == [(1, 100), (2, 30), (2, 30)]
    assert board["me"]["rank"] == 2 and board["me"]["points"] == 30
    before = {
        p: (
            await rw.http.get(f"/api/v1/rewards/leaderboard?period={p}", headers=users[0].headers)
        ).json()["items"]
        for p in ("weekly", "monthly", "all_time")
    }
    await redis.flushdb()
    r = await rw.http.post("/api/admin/rewards/leaderboard/rebuild", headers=rw.admin.headers)
    assert r.status_code == 200 and r.json() == {"weekly": 3, "monthly": 3, "all_time": 3}
    for p, items in before.items():
        after = await rw.http.get(
            f"/api/v1/rewards/leaderboard?period={p}", headers=users[0].headers
        )
        assert sorted(map(str, after.json()["items"])) == sorted(map(str, items))
    r = await rw.http.get("/api/v1/rewards/leaderboard?period=yearly", headers=users[0].headers)
    assert r.status_code == 422


async def test_adjustments_four_eyes_and_audit(rw: RewardsEnv, user_factory: UserFactory) -> None:
    user = await user_factory()
    r = await rw.http.post(
        "/api/admin/rewards/adjustments",
        json={"user_id": str(user.id), "points": 50_000, "reason": "big goodwill"},
        headers=rw.admin.headers,
    )
    assert r.status_code == 201 and r.json()["status"] == "pending_approval"
    adj = r.json()["id"]
    assert (await rw.balance(user))["available"] == 0
    r = await rw.http.post(
        f"/api/admin/rewards/adjustments/{adj}/approve", headers=rw.admin.headers
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "FOUR_EYES_REQUIRED"
    r = await rw.http.post(
        f"/api/admin/rewards/adjustments/{adj}/approve", headers=rw.admin2.headers
    )
    assert r.status_code == 200 and r.json()["status"] == "applied"
    assert (await rw.balance(user))["available"] == 50_000
    r = await rw.http.post(
        f"/api/admin/rewards/adjustments/{adj}/reject", headers=rw.admin2.headers
    )
    assert r.status_code == 409
    r = await rw.http.get("/api/admin/rewards/adjustments?status=applied", headers=rw.admin.headers)
    assert [a["id"] for a in r.json()["items"]] == [adj]
    async with rw.maker() as s:
        actions = (
            (
                await s.execute(
                    text("SELECT action FROM audit_log WHERE action LIKE 'rewards.%' ORDER BY id")
                )
            )
            .scalars()
            .all()
        )
    assert actions == ["rewards.adjustment_requested", "rewards.adjustment_approved"]
    r = await rw.http.post(
        "/api/admin/rewards/adjustments",
        json={"user_id": str(user.id), "points": -20_000, "reason": "clawback"},
        headers=rw.admin2.headers,
    )
    assert r.status_code == 201 and r.json()["status"] == "pending_approval"
    r = await rw.http.post(
        f"/api/admin/rewards/adjustments/{r.json()['id']}/reject", headers=rw.admin.headers
    )
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert (await rw.balance(user))["available"] == 50_000
    r = await rw.http.post(
        "/api/admin/rewards/adjustments",
        json={"user_id": str(uuid.uuid4()), "points": 5, "reason": "nobody"},
        headers=rw.admin.headers,
    )
    assert r.status_code == 404
    await rw.assert_books()


async def test_expiry_and_warnings(rw: RewardsEnv, user_factory: UserFactory) -> None:
    user = await user_factory()
    await rw.grant(user, 100)
    await rw.grant(user, 40)
    await rw.grant(user, 7)
    async with rw.maker() as s, s.begin():
        await s.execute(
            text("UPDATE rewards_lots SET expires_at = now() - interval '1 day' WHERE points = 100")
        )
        await s.execute(
            text(
                "UPDATE rewards_lots SET expires_at = now() + interval '10 days' WHERE points = 40"
            )
        )
    body = await rw.balance(user)
    assert body["available"] == 47  # the expired lot no longer counts
    assert [e["points"] for e in body["expiring"]] == [40]
    r = await rw.http.post("/api/admin/rewards/maintenance", headers=rw.admin.headers)
    assert r.status_code == 200
    assert r.json()["expired_lots"] == 1 and r.json()["warned_lots"] == 1
    r = await rw.http.post("/api/admin/rewards/maintenance", headers=rw.admin.headers)
    assert r.json()["expired_lots"] == 0 and r.json()["warned_lots"] == 0
    assert (await rw.balance(user))["available"] == 47
    async with rw.maker() as s:
        warned = (
            (
                await s.execute(
                    text(
                        "SELECT payload FROM outbox_events WHERE topic = 'rewards.points_expiring'"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(warned) == 1 and warned[0]["points"] == 40
    r = await rw.http.get("/api/v1/rewards/history", headers=user.headers)
    assert r.json()["items"][0]["kind"] == "rewards_expiry"
    await rw.assert_books()


async def test_referral_yearly_cap(rw: RewardsEnv, user_factory: UserFactory) -> None:
    from pull.kit.db import utcnow
    from pull.rewards import referrals
    from tests.conftest import make_settings

    capped = make_settings(rw.services, REWARDS_REFERRAL_YEARLY_CAP=1)
    referrer = await user_factory()
    r = await rw.http.get("/api/v1/rewards/referrals", headers=referrer.headers)
    code = r.json()["code"]
    first, second = await _register(rw, code), await _register(rw, code)
    for referee in (first, second):
        async with rw.maker() as s, s.begin():
            for topic in ("kyc.approved", "funding.deposit_settled"):
                await referrals.progress(
                    session=s,
                    referee_id=referee.id,
                    topic=topic,
                    amount=5_000,
                    settings=capped,
                    now=utcnow(),
                )
    r = await rw.http.get("/api/v1/rewards/referrals", headers=referrer.headers)
    states = {x["user_id"]: (x["status"], x["refusal_reason"]) for x in r.json()["referees"]}
    assert states == {
        str(first.id): ("rewarded", None),
        str(second.id): ("refused", "yearly_cap"),
    }
    assert (await rw.balance(referrer))["available"] == capped.rewards_referrer_points
