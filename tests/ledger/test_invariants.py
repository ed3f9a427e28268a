"""The ledger invariant report: per account class, the accounts that must never go negative and
those that are; through the admin endpoint, `pull ledger check` as a real process, and the
worker's `ledger_negative_accounts` gauge."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.ledger.service import Leg, system_account, transfer, user_account
from pull.worker import export_ledger_invariants
from tests.conftest import REPO, Services, UserFactory

CLEARING = system_account("bank_clearing")


def pull(services: Services, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pull.cli", *args],
        env=services.env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def gauge(account_class: str, never_negative: bool) -> float | None:
    return REGISTRY.get_sample_value(
        "ledger_negative_accounts",
        {"account_class": account_class, "never_negative": str(never_negative).lower()},
    )


async def test_a_negative_house_account_is_reported_and_alerted(
    client: httpx.AsyncClient,
    services: Services,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await user_factory()
    admin = await user_factory(admin=True)
    escrow = system_account("market_escrow:tdrain")
    async with sessionmaker() as s, s.begin():
        await transfer(
            session=s,
            idempotency_key="fund",
            kind="deposit",
            legs=[Leg(CLEARING, -5_000), Leg(user_account(user.id, "cash"), 5_000)],
        )
        await transfer(
            session=s,
            idempotency_key="fees",
            kind="exchange.trade",
            legs=[
                Leg(user_account(user.id, "cash"), -70),
                Leg(system_account("fee_revenue:t"), 70),
            ],
        )

    r = await client.get("/api/admin/ledger/invariants", headers=admin.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    classes = {c["account_class"]: c for c in body["classes"]}
    assert classes["user"]["never_negative"] and classes["user"]["accounts"] == 1
    assert classes["fee_revenue"]["accounts"] == 1 and classes["fee_revenue"]["negative"] == []
    # bank_clearing is negative by nature (it mirrors money at the bank): listed, allowed.
    assert not classes["bank_clearing"]["never_negative"]
    assert classes["bank_clearing"]["negative"] == [
        {"account": "system:bank_clearing:USD", "balance": -5_000, "available": -5_000}
    ]
    done = pull(services, "ledger", "check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("ledger invariants: ok")

    # A market escrow pays a user more than it holds: the books balance, the report does not.
    async with sessionmaker() as s, s.begin():
        await transfer(
            session=s,
            idempotency_key="drain",
            kind="exchange.settlement",
            legs=[Leg(escrow, -1_234), Leg(user_account(user.id, "cash"), 1_234)],
        )
    r = await client.get("/api/admin/ledger/invariants", headers=admin.headers)
    body = r.json()
    assert body["ok"] is False
    classes = {c["account_class"]: c for c in body["classes"]}
    assert classes["market_escrow"]["negative_count"] == 1
    assert classes["market_escrow"]["negative"] == [
        {"account": "system:market_escrow:tdrain:USD", "balance": -1_234, "available": -1_234}
    ]
    assert classes["user"]["negative_count"] == 0
    done = pull(services, "ledger", "check")
    assert done.returncode == 1
    assert "system:market_escrow:tdrain:USD  balance=-1234" in done.stdout
    assert "VIOLATED" in done.stdout
    as_json = pull(services, "ledger", "check", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["ok"] is False

    await export_ledger_invariants(sessionmaker)
    assert gauge("market_escrow", True) == 1
    assert gauge("fee_revenue", True) == 0
    assert gauge("bank_clearing", False) == 1

    r = await client.get("/api/admin/ledger/invariants", headers=user.headers)
    assert r.status_code == 403
