"""GET /api/v1/kyc/limits and /status for users who never started a verification."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.kyc import service
from tests.conftest import KycTierSetter, UserFactory


async def test_limits_show_used_and_remaining_now(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    kyc_tier: KycTierSetter,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await user_factory()
    r = await client.get("/api/v1/kyc/limits", headers=user.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["tier"] == "none"
    assert all(row["limit_cents"] == 0 for row in body["limits"])

    await kyc_tier(user.id, "basic")
    async with sessionmaker() as s, s.begin():
        await service.consume_limit(
            session=s, user_id=user.id, action="deposit", amount_cents=25_000, reference="d1"
        )
    body = (await client.get("/api/v1/kyc/limits", headers=user.headers)).json()
    rows = {(row["action"], row["window"]): row for row in body["limits"]}
    assert set(rows) == {
        ("deposit", "daily"),
        ("deposit", "monthly"),
        ("withdrawal", "daily"),
        ("withdrawal", "monthly"),
        ("trade", "daily"),
    }
    daily = rows[("deposit", "daily")]
    assert (daily["limit_cents"], daily["used_cents"], daily["remaining_cents"]) == (
        100_000,
        25_000,
        75_000,
    )
    assert daily["resets_at"] is not None
    assert rows[("deposit", "monthly")]["remaining_cents"] == 475_000
    assert rows[("withdrawal", "daily")]["resets_at"] is None
    assert body["single_trade_max_cents"] == 50_000
    assert body["instant_credit_cents"] == 0


async def test_status_of_a_user_who_never_started(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    body = (await client.get("/api/v1/kyc/status", headers=user.headers)).json()
    assert body == {
        "current_tier": "none",
        "tier_expires_at": None,
        "target_tier": None,
        "status": "none",
        "steps": [],
        "progress": 0,
        "next_action": "start",
        "inquiry_id": None,
        "session_token": None,
        "application": None,
    }
    r = await client.post("/api/v1/kyc/retry", headers=user.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "NOTHING_TO_RETRY"
