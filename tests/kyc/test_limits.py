"""The one limit decision: tiers, exact boundaries, rolling 24-hour and 30-day windows,
idempotent references, releases and per-user serialization."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any, Literal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.kyc import service
from pull.kyc.models import KycLimitUsage
from pull.kyc.service import KycRequired, LimitExceeded, LimitPolicy, ReferenceConflict, Tier
from tests.conftest import KycTierSetter, UserFactory

Action = Literal["deposit", "withdrawal", "trade"]
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(hours=24)
MONTH = dt.timedelta(days=30)
TICK = dt.timedelta(microseconds=1)


@pytest.fixture
async def basic_user(user_factory: UserFactory, kyc_tier: KycTierSetter) -> uuid.UUID:
    user = await user_factory()
    await kyc_tier(user.id, "basic")
    return user.id


async def consume(
    maker: async_sessionmaker[AsyncSession],
    user_id: uuid.UUID,
    action: Action,
    cents: int,
    *,
    at: dt.datetime,
    reference: str | None = None,
    policy: LimitPolicy | None = None,
) -> None:
    async with maker() as s, s.begin():
        await service.consume_limit(
            session=s,
            user_id=user_id,
            action=action,
            amount_cents=cents,
            reference=reference or uuid.uuid4().hex,
            now=at,
            policy=policy,
        )


async def rejected(
    maker: async_sessionmaker[AsyncSession],
    user_id: uuid.UUID,
    action: Action,
    cents: int,
    *,
    at: dt.datetime,
) -> dict[str, Any]:
    with pytest.raises(LimitExceeded) as info:
        await consume(maker, user_id, action, cents, at=at)
    assert info.value.status_code == 403 and info.value.code == "LIMIT_EXCEEDED"
    details: dict[str, Any] = info.value.details
    return details


async def test_no_tier_requires_kyc(
    user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory()
    for action in ("deposit", "withdrawal", "trade"):
        with pytest.raises(KycRequired) as info:
            await consume(sessionmaker, user.id, action, 1, at=T0)  # type: ignore[arg-type]
        assert info.value.status_code == 403
        assert info.value.code == "KYC_REQUIRED"
        assert info.value.details == {"required_tier": "basic"}
    async with sessionmaker() as s:
        assert await service.get_tier(session=s, user_id=user.id) is Tier.none


@pytest.mark.parametrize(
    ("action", "daily"),
    [("deposit", 100_000), ("withdrawal", 50_000), ("trade", 500_000)],
)
async def test_daily_limit_exact_boundary_and_rolling_24h(
    basic_user: uuid.UUID,
    sessionmaker: async_sessionmaker[AsyncSession],
    action: Action,
    daily: int,
) -> None:
    # Trades are at most 500 dollars each, so reach the daily figure in maximal pieces.
    piece = 50_000 if action == "trade" else daily
    for n in range(daily // piece):
        await consume(sessionmaker, basic_user, action, piece, at=T0 + n * TICK)
    details = await rejected(sessionmaker, basic_user, action, 1, at=T0 + DAY - TICK)
    assert details["limit"] == daily
    assert details["used"] == daily
    assert details["remaining"] == 0
    assert details["window"] == "daily"
    assert details["resets_at"] == (T0 + DAY).isoformat()
    # Exactly 24 hours after the first use, that use has left the window.
    await consume(sessionmaker, basic_user, action, piece, at=T0 + DAY)


async def test_deposit_just_under_then_exactly_at_the_limit(
    basic_user: uuid.UUID, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await consume(sessionmaker, basic_user, "deposit", 99_999, at=T0)
    details = await rejected(sessionmaker, basic_user, "deposit", 2, at=T0)
    assert (details["used"], details["remaining"]) == (99_999, 1)
    await consume(sessionmaker, basic_user, "deposit", 1, at=T0)  # exactly 1,000.00
    await rejected(sessionmaker, basic_user, "deposit", 1, at=T0)


@pytest.mark.parametrize(
    ("action", "daily", "monthly"),
    [("deposit", 100_000, 500_000), ("withdrawal", 50_000, 250_000)],
)
async def test_monthly_limit_rolls_after_30_days(
    basic_user: uuid.UUID,
    sessionmaker: async_sessionmaker[AsyncSession],
    action: Action,
    daily: int,
    monthly: int,
) -> None:
    days = monthly // daily
    for n in range(days):
        await consume(sessionmaker, basic_user, action, daily, at=T0 + n * DAY)
    # The next day the daily window is empty, but the 30-day one is full.
    at = T0 + days * DAY
    details = await rejected(sessionmaker, basic_user, action, 1, at=at)
    assert details["window"] == "monthly"
    assert (details["limit"], details["used"], details["remaining"]) == (monthly, monthly, 0)
    assert details["resets_at"] == (T0 + MONTH).isoformat()
    await rejected(sessionmaker, basic_user, action, 1, at=T0 + MONTH - TICK)
    await consume(sessionmaker, basic_user, action, daily, at=T0 + MONTH)
    # Only the first day's use has left: one more cent is still over the 30-day limit.
    await rejected(sessionmaker, basic_user, action, 1, at=T0 + MONTH + TICK)


async def test_resets_at_is_when_enough_usage_has_left(
    basic_user: uuid.UUID, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await consume(sessionmaker, basic_user, "deposit", 30_000, at=T0)
    await consume(sessionmaker, basic_user, "deposit", 30_000, at=T0 + dt.timedelta(hours=1))
    await consume(sessionmaker, basic_user, "deposit", 30_000, at=T0 + dt.timedelta(hours=2))
    at = T0 + dt.timedelta(hours=3)
    # 90,000 used: 50,000 more needs the first two uses gone.
    details = await rejected(sessionmaker, basic_user, "deposit", 50_000, at=at)
    assert details["remaining"] == 10_000
    assert details["resets_at"] == (T0 + dt.timedelta(hours=25)).isoformat()
    # More than the limit itself never fits: resets_at is when the window is empty.
    details = await rejected(sessionmaker, basic_user, "deposit", 100_001, at=at)
    assert details["resets_at"] == (T0 + dt.timedelta(hours=26)).isoformat()


async def test_single_trade_maximum(
    basic_user: uuid.UUID, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    details = await rejected(sessionmaker, basic_user, "trade", 50_001, at=T0)
    assert details == {
        "limit": 50_000,
        "used": 0,
        "remaining": 50_000,
        "resets_at": None,
        "action": "trade",
        "window": "single_trade",
    }
    await consume(sessionmaker, basic_user, "trade", 50_000, at=T0)


@pytest.mark.parametrize(
    ("tier", "daily_deposit", "single_trade"),
    [
        ("standard", 1_000_000, 500_000),
        ("enhanced", 5_000_000, 2_500_000),
        ("accredited", 50_000_000, 25_000_000),
    ],
)
async def test_higher_tiers_have_the_issue_table_limits(
    user_factory: UserFactory,
    kyc_tier: KycTierSetter,
    sessionmaker: async_sessionmaker[AsyncSession],
    tier: str,
    daily_deposit: int,
    single_trade: int,
) -> None:
    user = await user_factory()
    await kyc_tier(user.id, tier)
    await consume(sessionmaker, user.id, "deposit", daily_deposit, at=T0)
    assert (await rejected(sessionmaker, user.id, "deposit", 1, at=T0))["limit"] == daily_deposit
    assert (await rejected(sessionmaker, user.id, "trade", single_trade + 1, at=T0))[
        "limit"
    ] == single_trade
    await consume(sessionmaker, user.id, "trade", single_trade, at=T0)


async def test_same_reference_counts_once(
    basic_user: uuid.UUID, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await consume(sessionmaker, basic_user, "deposit", 100_000, at=T0, reference="dep-1")
    # A replay of a full day's deposit is not a new use, even though the day is full.
    await consume(sessionmaker, basic_user, "deposit", 100_000, at=T0, reference="dep-1")
    async with sessionmaker() as s:
        count = await s.scalar(select(func.count()).select_from(KycLimitUsage))
    assert count == 1
    with pytest.raises(ReferenceConflict):
        await consume(sessionmaker, basic_user, "withdrawal", 1, at=T0, reference="dep-1")


async def test_release_all_part_and_idempotent(
    basic_user: uuid.UUID, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await consume(sessionmaker, basic_user, "trade", 50_000, at=T0, reference="order-1")
    async with sessionmaker() as s, s.begin():
        await service.release_limit(session=s, reference="order-1", amount_cents=20_000)
        await service.release_limit(session=s, reference="order-1", amount_cents=20_000)
        await service.release_limit(session=s, reference="unknown")  # no-op
    async with sessionmaker() as s:
        row = (await s.scalars(select(KycLimitUsage))).one()
        assert row.released_cents == 20_000
    async with sessionmaker() as s, s.begin():
        await service.release_limit(session=s, reference="order-1")
        await service.release_limit(session=s, reference="order-1", amount_cents=10)  # no-op
    async with sessionmaker() as s:
        row = (await s.scalars(select(KycLimitUsage))).one()
        assert row.released_cents == 50_000
    # With everything given back, the whole day's trading limit is free again.
    for n in range(10):
        await consume(sessionmaker, basic_user, "trade", 50_000, at=T0 + n * TICK)
    await rejected(sessionmaker, basic_user, "trade", 1, at=T0)


async def test_a_rolled_back_transaction_records_nothing(
    basic_user: uuid.UUID, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as s:
        await service.consume_limit(
            session=s,
            user_id=basic_user,
            action="deposit",
            amount_cents=100_000,
            reference="x",
            now=T0,
        )
        await s.rollback()
    await consume(sessionmaker, basic_user, "deposit", 100_000, at=T0)


async def test_concurrent_requests_cannot_both_squeeze_under(
    basic_user: uuid.UUID, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    results = await asyncio.gather(
        *(consume(sessionmaker, basic_user, "deposit", 60_000, at=T0) for _ in range(4)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, LimitExceeded) for r in results if r is not None)


async def test_invalid_amounts_are_rejected(
    basic_user: uuid.UUID, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    for bad in (0, -5):
        with pytest.raises(Exception) as info:
            await consume(sessionmaker, basic_user, "deposit", bad, at=T0)
        assert getattr(info.value, "code", None) == "INVALID_AMOUNT"


async def test_expired_approval_counts_as_none(
    user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory()
    async with sessionmaker() as s, s.begin():
        await service.set_tier(
            session=s, user_id=user.id, tier="standard", actor_id=None, note=None, now=T0
        )
    expiry = T0 + dt.timedelta(days=365)
    async with sessionmaker() as s:
        assert await service.get_tier(session=s, user_id=user.id, now=expiry - TICK) == "standard"
        assert await service.get_tier(session=s, user_id=user.id, now=expiry) is Tier.none
    await consume(sessionmaker, user.id, "deposit", 1, at=expiry - TICK)
    with pytest.raises(KycRequired):
        await consume(sessionmaker, user.id, "deposit", 1, at=expiry)


async def test_instant_credit_per_tier(
    user_factory: UserFactory,
    kyc_tier: KycTierSetter,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await user_factory()
    expected = {"none": 0, "basic": 0, "standard": 25_000, "enhanced": 100_000}
    for tier, cents in expected.items():
        await kyc_tier(user.id, tier)
        async with sessionmaker() as s:
            assert await service.instant_credit_cents(session=s, user_id=user.id) == cents


async def test_limits_are_configurable(
    basic_user: uuid.UUID, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    policy = LimitPolicy.from_overrides('{"basic": {"daily_deposit": 500}}')
    await consume(sessionmaker, basic_user, "deposit", 500, at=T0, policy=policy)
    with pytest.raises(LimitExceeded):
        await consume(sessionmaker, basic_user, "deposit", 1, at=T0, policy=policy)
    with pytest.raises(ValueError):
        LimitPolicy.from_overrides({"basic": {"daily_nonsense": 1}})
    with pytest.raises(ValueError):
        LimitPolicy.from_overrides({"none": {"daily_deposit": 1}})
