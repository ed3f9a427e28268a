"""The broker account opens on KYC approval: KYC's committed outbox event, delivered by the
worker's real relay (the handlers `pull worker` runs), opens it once; redelivery, a racing
`POST /account` and events that grant no opening tier change nothing.
(tests/test_journey.py sees it happen across real `pull api` and `pull worker` processes.)"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from pull.brokerage.models import BrokerageAccount
from pull.config import Settings
from pull.kit.outbox import OutboxRelay, emit
from pull.worker import outbox_relay
from tests.brokerage.conftest import approve_kyc
from tests.conftest import KycTierSetter, UserFactory


async def _relay_all(relay: OutboxRelay) -> None:
    for _ in range(20):
        if await relay.relay_once() == 0:
            return


async def _accounts(maker: async_sessionmaker[AsyncSession]) -> int:
    async with maker() as s:
        return int(await s.scalar(select(func.count()).select_from(BrokerageAccount)) or 0)


async def _undelivered(maker: async_sessionmaker[AsyncSession]) -> int:
    async with maker() as s:
        return int(
            await s.scalar(
                text(
                    "SELECT count(*) FROM outbox_events"
                    " WHERE delivered_at IS NULL AND topic LIKE 'kyc.%'"
                )
            )
            or 0
        )


async def test_kyc_approval_opens_the_broker_account_once(
    user_factory: UserFactory,
    kyc_tier: KycTierSetter,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient,
    worker_runtime: Any,
    temporal_client: Client,
) -> None:
    relay = outbox_relay(sessionmaker, temporal_client, settings)
    user = await user_factory()
    before = await http.get("/api/v1/trading/account", headers=user.headers)
    assert before.status_code == 403, before.text
    assert before.json()["error"]["code"] == "BROKERAGE_ACCOUNT_REQUIRED"

    await approve_kyc(sessionmaker, settings, user.id)
    await kyc_tier(user.id, "standard")  # emits kyc.tier_changed none -> standard
    await _relay_all(relay)
    r = await http.get("/api/v1/trading/account", headers=user.headers)
    assert r.status_code == 200, r.text
    opened = r.json()
    assert opened is not None and opened["status"] == "ACTIVE", opened
    assert await _accounts(sessionmaker) == 1

    # kyc.approved for the same user, a redelivery of everything, and the manual route:
    # still the one account
    async with sessionmaker() as s, s.begin():
        emit(
            s,
            topic="kyc.approved",
            key=str(user.id),
            payload={"user_id": str(user.id), "tier": "standard", "application_id": "x"},
        )
    await _relay_all(relay)
    async with sessionmaker() as s, s.begin():
        await s.execute(text("UPDATE outbox_events SET delivered_at = NULL"))
    await _relay_all(relay)
    again = await http.post("/api/v1/trading/account", headers=user.headers)
    assert again.status_code == 200, again.text
    assert again.json() == opened
    assert await _accounts(sessionmaker) == 1
    assert await _undelivered(sessionmaker) == 0


async def test_events_that_grant_no_opening_tier_open_nothing(
    user_factory: UserFactory,
    kyc_tier: KycTierSetter,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient,
    worker_runtime: Any,
    temporal_client: Client,
) -> None:
    relay = outbox_relay(sessionmaker, temporal_client, settings)
    basic = await user_factory()
    await approve_kyc(sessionmaker, settings, basic.id)
    await kyc_tier(basic.id, "basic")  # below standard
    no_data = await user_factory()
    await kyc_tier(no_data.id, "standard")  # an operator's tier, no approved application
    await _relay_all(relay)
    assert await _accounts(sessionmaker) == 0
    # both events were handled (not left to retry forever)
    assert await _undelivered(sessionmaker) == 0
    # the customer without data still gets the typed answer from the route
    r = await http.post("/api/v1/trading/account", headers=no_data.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "KYC_DATA_MISSING", r.text
