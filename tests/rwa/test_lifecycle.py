"""The whole RWA lifecycle over HTTP against real `pull api` and `pull worker` processes:
draft -> offering -> funded -> (lock-up 0) -> trading -> buyout_vote -> sold -> distributed.

Users come from the shared fixtures (registration over HTTP; admins enrol 2FA through the real
flow) and investors' cash from the ledger, as a settled deposit leaves it: funding and KYC are
not what this test is about."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.ledger import service as ledger
from tests.conftest import (
    KycTierSetter,
    Services,
    TestUser,
    UserFactory,
    free_port,
    spawn,
    start_api_process,
    stop_process,
    wait_http,
)


@pytest.fixture
def processes(services: Services) -> Iterator[str]:
    """`pull api` and `pull worker` on a task queue of their own; yields the API's URL."""
    env = {
        "TEMPORAL_TASK_QUEUE": f"rwa-life-{uuid.uuid4().hex[:8]}",
        "RWA_LOCKUP_SECONDS": "0",
        "RWA_BUYOUT_VOTE_SECONDS": "4",
        "OUTBOX_POLL_SECONDS": "0.1",
        "RATE_LIMIT_ENABLED": "false",
    }
    api, url = start_api_process(services, **env)
    metrics = free_port()
    worker = spawn(
        ["worker"],
        services.env(METRICS_PORT=str(metrics), **env),
        services.data_dir / f"rwa-worker-{metrics}.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{metrics}/metrics", proc=worker)
        yield url
    finally:
        stop_process(worker)
        stop_process(api)


async def _until(
    http: httpx.AsyncClient, path: str, user: TestUser, field: str, *values: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = await http.get(path, headers=user.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        if body[field] in values:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} never reached {field} in {values}: {body}")


async def test_lifecycle_from_draft_to_distributed(
    processes: str,
    user_factory: UserFactory,
    kyc_tier: KycTierSetter,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    admin, second = await user_factory(admin=True), await user_factory(admin=True)
    consignor = await user_factory()
    investors = [await user_factory() for _ in range(3)]
    for user in investors:
        await kyc_tier(user.id, "basic")
        async with sessionmaker() as s, s.begin():
            await ledger.transfer(
                session=s,
                idempotency_key=f"test:fund:{user.id}",
                kind="deposit_settled",
                legs=[
                    ledger.Leg(ledger.system_account("bank_clearing"), -100_000),
                    ledger.Leg(ledger.user_account(user.id, "cash"), 100_000),
                ],
            )
    a, b, c = investors
    async with httpx.AsyncClient(base_url=processes, timeout=30) as http:

        async def post(user: TestUser, path: str, body: Any = None, key: bool = False) -> Any:
            headers = dict(user.headers)
            if key:
                headers["Idempotency-Key"] = str(uuid.uuid4())
            r = await http.post(path, json=body, headers=headers)
            assert r.status_code in (200, 201), (path, r.text)
            return r.json()

        asset = await post(
            admin,
            "/api/admin/rwa/assets",
            {
                "title": "1986 Fleer Michael Jordan #57",
                "category": "card",
                "grader": "PSA",
                "cert_number": "31415920",
                "grade": "10",
                "custodian": "PULL Vault",
                "insured_value_cents": 50_000_000,
                "consignor_id": str(consignor.id),
            },
        )
        assert asset["state"] == "draft"
        aid = asset["id"]
        await post(
            admin,
            f"/api/admin/rwa/assets/{aid}/valuations",
            {"kind": "appraisal", "value_cents": 12_000_000, "source": "PSA/DNA"},
        )
        now = dt.datetime.now(dt.UTC)
        offering = await post(
            admin,
            f"/api/admin/rwa/assets/{aid}/offerings",
            {
                "total_shares": 100,
                "price_cents": 1000,
                "opens_at": now.isoformat(),
                "closes_at": (now + dt.timedelta(seconds=8)).isoformat(),
                "min_raise_cents": 100_000,
                "max_per_investor_bps": 5000,
            },
        )
        await post(second, f"/api/admin/rwa/offerings/{offering['id']}/open")
        assert (await http.get(f"/api/v1/rwa/assets/{aid}", headers=a.headers)).json()[
            "state"
        ] == "offering"
        for user, shares in ((a, 50), (b, 30), (c, 20)):
            await post(
                user,
                f"/api/v1/rwa/offerings/{offering['id']}/subscribe",
                {"shares": shares},
                key=True,
            )
        await _until(http, f"/api/v1/rwa/assets/{aid}", a, "state", "trading")
        consignor_balance = (await http.get("/api/v1/balance", headers=consignor.headers)).json()
        assert consignor_balance["available"] == 100_000 - 5_000
        # secondary: c sells 10 to b
        await post(
            c,
            "/api/v1/rwa/orders",
            {"asset_id": aid, "side": "sell", "price_cents": 1200, "quantity": 10},
            key=True,
        )
        fill = await post(
            b,
            "/api/v1/rwa/orders",
            {"asset_id": aid, "side": "buy", "price_cents": 1300, "quantity": 10},
            key=True,
        )
        assert fill["status"] == "executed" and fill["filled_cents"] == 12_000
        own = (await http.get("/api/v1/rwa/ownership", headers=b.headers)).json()
        assert [(h["shares"], h["cost_basis_cents"], h["value_cents"]) for h in own["items"]] == [
            (40, 42_000, 48_000)
        ]
        # buyout: a (50) and b (40) vote yes; passes; settled by the other admin; distributed
        offer = await post(
            admin,
            f"/api/admin/rwa/assets/{aid}/buyouts",
            {"buyer": "Goldin", "price_cents": 200_000},
        )
        await post(a, f"/api/v1/rwa/buyouts/{offer['id']}/vote", {"approve": True})
        await post(b, f"/api/v1/rwa/buyouts/{offer['id']}/vote", {"approve": True})
        await post(c, f"/api/v1/rwa/buyouts/{offer['id']}/vote", {"approve": False})
        await _until(http, f"/api/v1/rwa/buyouts/{offer['id']}", a, "status", "passed")
        await post(second, f"/api/admin/rwa/buyouts/{offer['id']}/settle")
        done = await _until(http, f"/api/v1/rwa/assets/{aid}", a, "state", "distributed")
        assert done["shares_outstanding"] == 0
        balances = [
            (await http.get("/api/v1/balance", headers=u.headers)).json()["available"]
            for u in (a, b, c)
        ]
        # a: -50 000 + 50% of 200 000; b: -30 000 -12 000 + 40%; c: -20 000 +12 000 + 10%
        assert balances == [150_000, 138_000, 112_000]
        for u in (a, b, c):
            own = (await http.get("/api/v1/rwa/ownership", headers=u.headers)).json()
            assert own["items"] == []
    async with sessionmaker() as s:
        assert (await ledger.trial_balance(session=s)).balanced
