"""Notifications from other modules' events, end to end through the HTTP API of a real API
process with the outbox relayed: a declined verification (the sandbox provider's decline, and
an admin's reject after review) is one `kyc` notification whatever the relay redelivers; an
RWA subscription's result at the offering's close, and a buyout offer put to the vote, reach
each subscriber / holder (and no one else)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from sqlalchemy import text

from tests.conftest import UserFactory
from tests.kyc.conftest import KycEnv, KycEnvFactory, kyc_env
from tests.rwa.conftest import RwaEnvFactory, rwa_env

__all__ = ["kyc_env", "rwa_env"]  # the fixtures, used here


async def _notes(
    http: httpx.AsyncClient, user: Any, kind: str, want: int, timeout: float = 40
) -> list[Any]:
    """The user's notifications of `kind` (a type, or a title), once there are `want`."""
    deadline = time.monotonic() + timeout
    found: list[Any] = []
    while time.monotonic() < deadline:
        r = await http.get("/api/v1/notifications", headers=user.headers)
        assert r.status_code == 200, r.text
        found = [n for n in r.json()["items"] if kind in (n["type"], n["title"])]
        if len(found) >= want:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"expected {want} {kind} notification(s), got {found}")


async def _declines(env: KycEnv, user: Any, want: int) -> list[Any]:
    return await _notes(env.http, user, "Verification not approved", want)


async def test_a_declined_verification_is_notified_once(
    kyc_env: KycEnvFactory, user_factory: UserFactory
) -> None:
    env = await kyc_env()
    user = await user_factory()
    assert (await env.start(user, last_name="Decline")).status_code == 202
    async with env.worker():
        body = await env.wait_status(user, "declined", "approved", "manual_review")
        assert body["status"] == "declined"
        found = await _declines(env, user, 1)
        application_id = body["application"]["id"]
        assert found[0]["type"] == "kyc"
        assert found[0]["data"] == {"application_id": application_id}
        assert "identity check failed" not in found[0]["body"]  # the reason stays internal
        # the relay delivering the event again makes no second notification
        async with env.maker() as s, s.begin():
            await s.execute(
                text("UPDATE outbox_events SET delivered_at = NULL WHERE topic = 'kyc.declined'")
            )
        await asyncio.sleep(1.0)  # the relay polls every 0.1 s
        assert len(await _declines(env, user, 1)) == 1


async def test_an_admin_reject_is_notified(
    kyc_env: KycEnvFactory, user_factory: UserFactory
) -> None:
    env = await kyc_env()
    user = await user_factory()
    admin = await user_factory(admin=True)
    assert (await env.start(user, last_name="Review")).status_code == 202
    async with env.worker():
        await env.wait_status(user, "manual_review")
        assert not await _declines(env, user, 0)
        r = await env.http.post(
            f"/api/admin/kyc/{user.id}/reject",
            json={"reason": "document does not match"},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
        found = await _declines(env, user, 1)
    assert len(found) == 1
    assert "document does not match" not in found[0]["body"]


async def test_rwa_subscription_results_and_buyout_votes(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env(RWA_BUYOUT_VOTE_SECONDS=600)
    a, b, outsider = await env.investor(), await env.investor(), await env.investor()
    asset = await env.trading_asset([(a, 60), (b, 40)], price_cents=1000)
    async with env.worker():
        for user, shares in ((a, 60), (b, 40)):
            (sub,) = await _notes(env.http, user, "rwa_offering", 1)
            assert (sub["data"]["outcome"], sub["data"]["shares"]) == ("funded", shares)
            assert sub["data"]["amount"] == shares * 1000
            assert f"your {shares:,} shares ($" in sub["body"]
        admin = await env.admin(0)
        r = await env.http.post(
            f"/api/admin/rwa/assets/{asset['id']}/buyouts",
            json={"buyer": "Heritage Auctions", "price_cents": 150_000},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        offer = r.json()
        env.workflow_ids.append(f"rwa-buyout-{offer['id']}")
        for user, shares in ((a, 60), (b, 40)):
            (vote,) = await _notes(env.http, user, "rwa_vote", 1)
            assert vote["data"] == {
                "buyout_id": offer["id"],
                "asset_id": asset["id"],
                "shares": shares,
            }
            assert "Heritage Auctions offers $1,500.00" in vote["body"]
    r = await env.http.get("/api/v1/notifications", headers=outsider.headers)
    assert not [n for n in r.json()["items"] if n["type"].startswith("rwa_")]
