"""An RWA offering opening, and closing soon, notified to the customers who asked for it
(`rwa_listing` turned on in their preferences) and may subscribe (their KYC tier), on the
channels they chose, once each: through a real API server, the outbox relay running and the
OfferingWorkflow on a worker (its timers, not in-process steps)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import httpx
from sqlalchemy import text

from tests.rwa.conftest import RwaEnv, RwaEnvFactory, rwa_env

__all__ = ["rwa_env"]  # the fixture, used here


async def _listing(http: httpx.AsyncClient, user: Any) -> list[dict[str, Any]]:
    r = await http.get("/api/v1/notifications", headers=user.headers)
    assert r.status_code == 200, r.text
    return [n for n in r.json()["items"] if n["type"] == "rwa_listing"]


async def _wait_kinds(
    env: RwaEnv, user: Any, want: list[str], timeout: float = 60
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = await _listing(env.http, user)
        if sorted(n["data"]["kind"] for n in found) == sorted(want):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"expected {want}, got {[n['data']['kind'] for n in found]}")


async def _opt_in(env: RwaEnv, user: Any, channels: tuple[str, ...]) -> None:
    r = await env.http.put(
        "/api/v1/notifications/preferences",
        json={
            "preferences": [
                {"type": "rwa_listing", "channel": ch, "enabled": True} for ch in channels
            ]
        },
        headers=user.headers,
    )
    assert r.status_code == 200, r.text


async def test_offering_opened_and_closing_soon(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env(RWA_CLOSING_SOON_SECONDS=14)
    follower = await env.investor()  # in-app and e-mail
    subscriber = await env.investor(cash=100_000)  # in-app; subscribes once it opens
    too_low = await env.investor(tier="none")  # opted in, but may not subscribe
    bystander = await env.investor()  # never opted in: the type is off by default
    await _opt_in(env, follower, ("in_app", "email"))
    await _opt_in(env, subscriber, ("in_app",))
    await _opt_in(env, too_low, ("in_app", "email", "push"))
    r = await env.http.get("/api/v1/notifications/preferences", headers=bystander.headers)
    prefs = {(p["type"], p["channel"]): p["enabled"] for p in r.json()["preferences"]}
    assert not any(on for (t, _), on in prefs.items() if t == "rwa_listing")

    asset = await env.create_asset(title="1986 Fleer Michael Jordan Rookie")
    now = dt.datetime.now(dt.UTC)
    opens_at = now + dt.timedelta(seconds=8)
    offering = await env.create_offering(
        asset["id"],
        opens_at=opens_at.isoformat(),
        closes_at=(now + dt.timedelta(seconds=38)).isoformat(),
    )
    async with env.worker():
        await env.open_offering(offering["id"])
        await asyncio.sleep(1)
        early = await _listing(env.http, follower)
        if dt.datetime.now(dt.UTC) < opens_at - dt.timedelta(seconds=0.5):
            assert not early, "announced before opens_at"
        (opened,) = await _wait_kinds(env, follower, ["opened"])
        assert opened["title"] == "New offering: 1986 Fleer Michael Jordan Rookie"
        assert opened["data"]["offering_id"] == offering["id"]
        assert "1,000 shares" in opened["body"] and "$10.00 each" in opened["body"]
        await _wait_kinds(env, subscriber, ["opened"])
        r = await env.subscribe(subscriber, offering["id"], 10)
        assert r.status_code == 201, r.text
        # 14 s before the close (16 s after opening): closing soon, not to the subscriber
        found = await _wait_kinds(env, follower, ["opened", "closing_soon"])
        soon = next(n for n in found if n["data"]["kind"] == "closing_soon")
        assert soon["title"] == "Closing soon: 1986 Fleer Michael Jordan Rookie"
        assert "990 of 1,000 shares are left" in soon["body"]
        # the relay delivering both events again makes no second notification
        async with env.maker() as s, s.begin():
            await s.execute(
                text(
                    "UPDATE outbox_events SET delivered_at = NULL "
                    "WHERE topic LIKE 'rwa.offering_%' AND payload->>'offering_id' = :o"
                ),
                {"o": offering["id"]},
            )
        await env.wait_offering(offering["id"], "failed")
        await asyncio.sleep(1.0)
        # and the follower's e-mails went out, one each
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            async with env.maker() as s:
                statuses = (
                    await s.execute(
                        text(
                            "SELECT d.channel, d.status FROM notification_deliveries d "
                            "JOIN notifications n ON n.id = d.notification_id "
                            "WHERE n.user_id = :u AND n.type = 'rwa_listing'"
                        ),
                        {"u": follower.id},
                    )
                ).all()
            if all(st != "pending" for _, st in statuses):
                break
            await asyncio.sleep(0.2)
    assert sorted(statuses) == [("email", "sent")] * 2 + [("in_app", "sent")] * 2

    assert len(await _listing(env.http, follower)) == 2
    assert [n["data"]["kind"] for n in await _listing(env.http, subscriber)] == ["opened"]
    assert not await _listing(env.http, too_low)
    assert not await _listing(env.http, bystander)
    async with env.maker() as s:
        mails = await s.scalar(
            text(
                "SELECT count(*) FROM outbound_emails "
                "WHERE to_address = :t AND kind = 'notification.rwa_listing'"
            ),
            {"t": follower.email},
        )
    assert mails == 2


async def test_a_canceled_offering_announces_nothing(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env(RWA_CLOSING_SOON_SECONDS=5)
    follower = await env.investor()
    await _opt_in(env, follower, ("in_app",))
    asset = await env.create_asset()
    now = dt.datetime.now(dt.UTC)
    offering = await env.create_offering(
        asset["id"],
        opens_at=(now + dt.timedelta(seconds=3)).isoformat(),
        closes_at=(now + dt.timedelta(seconds=20)).isoformat(),
    )
    async with env.worker():
        await env.open_offering(offering["id"])
        r = await env.http.post(
            f"/api/admin/rwa/offerings/{offering['id']}/cancel",
            json={"reason": "consignor withdrew"},
            headers=(await env.admin(0)).headers,
        )
        assert r.status_code == 200, r.text
        await env.wait_offering(offering["id"], "canceled")
        await asyncio.sleep(4)  # past opens_at
    assert not await _listing(env.http, follower)
