"""Referral fraud checks beyond the device one, leaderboard names with privacy, expiry
warnings that reach the customer's mailbox."""

from __future__ import annotations

import datetime as dt
import uuid

from redis.asyncio import Redis
from sqlalchemy import text

from pull.rewards import leaderboard
from tests.conftest import TestUser, UserFactory
from tests.identity.test_phone import box, texted_code
from tests.rewards.conftest import RewardsEnv
from tests.rewards.test_engagement import _register


async def _link_sandbox_bank(rw: RewardsEnv, user: TestUser) -> None:
    r = await rw.http.post(
        "/api/v1/funding/sandbox/public-token",
        json={"username": "user_good", "password": "pass_good"},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    link = r.json()
    checking = next(a for a in link["accounts"] if a["subtype"] == "checking")
    r = await rw.http.post(
        "/api/v1/funding/bank-accounts",
        json={"public_token": link["public_token"], "account_id": checking["account_id"]},
        headers=user.headers,
    )
    assert r.status_code == 201, r.text


async def _qualify(rw: RewardsEnv, *users: TestUser) -> None:
    for u in users:
        await rw.emit("kyc.approved", {"user_id": str(u.id), "tier": "basic"})
        await rw.emit(
            "funding.deposit_settled",
            {"deposit_id": str(uuid.uuid4()), "user_id": str(u.id), "amount": 5_000},
        )
    await rw.drain()


async def _states(rw: RewardsEnv, referrer: TestUser) -> dict[str, tuple[str, str | None]]:
    r = await rw.http.get("/api/v1/rewards/referrals", headers=referrer.headers)
    assert r.status_code == 200, r.text
    return {x["user_id"]: (x["status"], x["refusal_reason"]) for x in r.json()["referees"]}


async def test_referral_refused_for_a_phone_that_moved_a_shared_bank_and_a_device_farm(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    referrer = await user_factory()
    code = (await rw.http.get("/api/v1/rewards/referrals", headers=referrer.headers)).json()["code"]
    # The referrer verified this number earlier and has since moved to another one (the
    # user factory's): a verified number is unique at a time, so it is free again.
    old_number = "+1415555" + str(uuid.uuid4().int % 10_000).zfill(4)
    async with rw.maker() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO phone_verifications (id, user_id, phone, provider, provider_ref, "
                "status, attempts, created_at, expires_at, verified_at) VALUES (:id, :u, :p, "
                "'sandbox', 'x', 'approved', 0, now() - interval '2 hours', "
                "now() - interval '110 minutes', now() - interval '2 hours')"
            ),
            {"id": uuid.uuid4(), "u": referrer.id, "p": old_number},
        )
    phoner = await _register(rw, code)
    r = await rw.http.post(
        "/api/auth/phone/start", headers=phoner.headers, json={"phone": old_number}
    )
    assert r.status_code == 202, r.text
    r = await rw.http.post(
        "/api/auth/phone/verify",
        headers=phoner.headers,
        json={"code": await texted_code(rw.http, phoner)},
    )
    assert r.status_code == 200, r.text

    # Same bank login on both sides.
    banker = await _register(rw, code)
    await _link_sandbox_bank(rw, referrer)
    await _link_sandbox_bank(rw, banker)

    # One device signs up two referees: the first is rewarded, the second is a farm.
    farm_a, farm_b, honest = [await _register(rw, code) for _ in range(3)]
    for u in (farm_a, farm_b):
        r = await rw.http.get(
            "/api/v1/rewards/balance", headers={**u.headers, "X-Device-Fingerprint": "farm-phone"}
        )
        assert r.status_code == 200
    r = await rw.http.get(
        "/api/v1/rewards/balance", headers={**honest.headers, "X-Device-Fingerprint": "own-phone"}
    )
    assert r.status_code == 200

    await _qualify(rw, phoner, banker, farm_a, honest)
    await _qualify(rw, farm_b)
    assert await _states(rw, referrer) == {
        str(phoner.id): ("refused", "same_phone"),
        str(banker.id): ("refused", "same_bank_account"),
        str(farm_a.id): ("rewarded", None),
        str(farm_b.id): ("refused", "device_reused"),
        str(honest.id): ("rewarded", None),
    }
    assert (await rw.balance(farm_b))["available"] == 0
    assert (await rw.balance(phoner))["available"] == 0
    await rw.assert_books()


async def test_leaderboard_shows_names_only_to_those_who_opt_in(
    rw: RewardsEnv, user_factory: UserFactory, redis: Redis
) -> None:
    await rw.rule(
        key="dep-names",
        event_type="funding.deposit_settled",
        formula={"type": "per_unit", "field": "amount", "per": 100, "points": 1},
    )
    shy, proud, viewer = [await user_factory() for _ in range(3)]
    r = await rw.http.patch(
        "/api/auth/me", json={"display_name": "Proud Pat"}, headers=proud.headers
    )
    assert r.status_code == 200, r.text
    for u, amount in ((shy, 9_000), (proud, 5_000), (viewer, 1_000)):
        await rw.emit(
            "funding.deposit_settled",
            {"deposit_id": str(uuid.uuid4()), "user_id": str(u.id), "amount": amount},
        )
    r = await rw.http.put(
        "/api/v1/rewards/settings", json={"leaderboard_public": True}, headers=proud.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["leaderboard_public"] is True and r.json()["timezone"] == "UTC"
    await rw.drain()

    async def board(user: TestUser) -> dict[str, object]:
        r = await rw.http.get("/api/v1/rewards/leaderboard?period=weekly", headers=user.headers)
        assert r.status_code == 200, r.text
        out: dict[str, object] = r.json()
        return out

    seen = await board(viewer)
    items = seen["items"]
    assert isinstance(items, list)
    shy_alias = leaderboard.alias(shy.id, rw.settings.jwt_secret)
    assert [(e["rank"], e["display_name"], e["points"]) for e in items] == [
        (1, shy_alias, 90),
        (2, "Proud Pat", 50),
        (3, leaderboard.alias(viewer.id, rw.settings.jwt_secret), 10),
    ]
    # Nobody else's id is shown; the caller's own entry says it is theirs.
    assert [e["user_id"] for e in items] == [None, None, str(viewer.id)]
    assert [e["is_me"] for e in items] == [False, False, True]
    assert seen["me"] == items[2]
    assert shy_alias.startswith("Player ") and str(shy.id) not in str(seen)
    assert shy.email not in str(seen)

    # Opting out takes the name off; a rebuild from the database keeps the choices.
    r = await rw.http.put(
        "/api/v1/rewards/settings", json={"leaderboard_public": False}, headers=proud.headers
    )
    assert r.status_code == 200
    await rw.drain()
    items = (await board(viewer))["items"]
    assert isinstance(items, list)
    assert items[1]["display_name"] == leaderboard.alias(proud.id, rw.settings.jwt_secret)
    r = await rw.http.put(
        "/api/v1/rewards/settings", json={"leaderboard_public": True}, headers=proud.headers
    )
    await rw.drain()
    await redis.flushdb()
    r = await rw.http.post("/api/admin/rewards/leaderboard/rebuild", headers=rw.admin.headers)
    assert r.status_code == 200, r.text
    mine = (await board(proud))["me"]
    assert isinstance(mine, dict)
    assert mine["display_name"] == "Proud Pat" and mine["is_me"] and mine["rank"] == 2


async def test_expiry_warning_reaches_the_mailbox(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await rw.grant(user, 40)
    async with rw.maker() as s, s.begin():
        await s.execute(
            text(
                "UPDATE rewards_lots SET expires_at = now() + interval '10 days' WHERE user_id = :u"
            ),
            {"u": user.id},
        )
    r = await rw.http.post("/api/admin/rewards/maintenance", headers=rw.admin.headers)
    assert r.status_code == 200 and r.json()["warned_lots"] == 1
    r = await rw.http.post("/api/admin/rewards/maintenance", headers=rw.admin.headers)
    assert r.json()["warned_lots"] == 0
    items = (await box(rw.http, user))["items"]
    assert isinstance(items, list)
    mails = [m for m in items if m["channel"] == "email" and "expire" in (m["subject"] or "")]
    assert len(mails) == 1, items
    assert mails[0]["to"] == user.email and mails[0]["subject"] == "40 PULL points expire soon"
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).strftime("%Y-%m-%d")
    assert f"40 points on {day}" in mails[0]["body"]


async def test_expiry_warning_is_an_in_app_notification_too(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    """The `rewards.points_expiring` event reaches the notifications module (relayed)."""
    user = await user_factory()
    await rw.grant(user, 25)
    async with rw.maker() as s, s.begin():
        await s.execute(
            text(
                "UPDATE rewards_lots SET expires_at = now() + interval '5 days' WHERE user_id = :u"
            ),
            {"u": user.id},
        )
    r = await rw.http.post("/api/admin/rewards/maintenance", headers=rw.admin.headers)
    assert r.status_code == 200 and r.json()["warned_lots"] == 1
    await rw.drain()
    await rw.drain()  # a redelivery makes no second notification
    r = await rw.http.get("/api/v1/notifications", headers=user.headers)
    assert r.status_code == 200, r.text
    expiring = [n for n in r.json()["items"] if "expire" in n["title"]]
    assert [(n["type"], n["title"]) for n in expiring] == [("rewards", "25 points expire soon")]


async def test_one_warning_per_user_per_run_even_across_batches(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    """Three lots of one user expiring soon, warned in batches of one lot: one e-mail that
    lists all three (a batch takes whole users), not three."""
    from pull.kit.db import session_scope
    from pull.rewards import service as rewards

    user = await user_factory()
    for points in (10, 20, 30):
        await rw.grant(user, points)
    async with rw.maker() as s, s.begin():
        await s.execute(
            text(
                "UPDATE rewards_lots SET expires_at = now() + interval '3 days' * points / 10 "
                "WHERE user_id = :u"
            ),
            {"u": user.id},
        )
    for _ in range(200):  # other tests' lots may come first: run batches until none is left
        async with session_scope(rw.maker) as s:
            done = await rewards.warn_batch(
                session=s, settings=rw.settings, now=dt.datetime.now(dt.UTC), limit=1
            )
        if done == 0:
            break
    async with session_scope(rw.maker) as s:
        left = await s.scalar(
            text("SELECT count(*) FROM rewards_lots WHERE user_id = :u AND warned_at IS NULL"),
            {"u": user.id},
        )
    assert left == 0
    items = (await box(rw.http, user))["items"]
    mails = [m for m in items if m["channel"] == "email" and "expire" in (m["subject"] or "")]
    assert len(mails) == 1, items
    assert mails[0]["subject"] == "60 PULL points expire soon"
