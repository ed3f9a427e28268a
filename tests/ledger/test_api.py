"""Ledger endpoints: balance, paginated transactions, CSV statement, admin trial balance."""

from __future__ import annotations

import csv
import io

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.ledger.service import Leg, system_account, transfer, user_account
from tests.conftest import UserFactory

CLEARING = system_account("bank_clearing")


async def test_balance_transactions_statement_and_trial_balance(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await user_factory()
    other = await user_factory()
    admin = await user_factory(admin=True)
    async with sessionmaker() as s, s.begin():
        for n in range(5):
            await transfer(
                session=s,
                idempotency_key=f"d{n}",
                kind="deposit",
                legs=[
                    Leg(CLEARING, -(n + 1) * 100),
                    Leg(user_account(user.id, "cash"), (n + 1) * 100),
                ],
                reference=f"deposit:{n}",
            )
        await transfer(
            session=s,
            idempotency_key="hold",
            kind="withdrawal",
            legs=[Leg(user_account(user.id, "cash"), -250), Leg(CLEARING, 250)],
            pending=True,
        )
        await transfer(
            session=s,
            idempotency_key="other",
            kind="deposit",
            legs=[Leg(CLEARING, -7), Leg(user_account(other.id, "cash"), 7)],
        )

    r = await client.get("/api/v1/balance", headers=user.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "available": 1_250,
        "held": 250,
        "pending_deposits": 0,
        "withdrawable": 1_250,
        "total": 1_500,
        "currency": "USD",
    }
    assert (await client.get("/api/v1/balance")).status_code == 401

    seen: list[dict[str, object]] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = await client.get("/api/v1/ledger/transactions", headers=user.headers, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += page["items"]
        cursor = page["cursor"]
        if not cursor:
            break
    assert len(seen) == 6  # five deposits and the hold; nothing of the other user
    assert seen[0]["kind"] == "withdrawal" and seen[0]["status"] == "pending"
    assert seen[0]["amount"] == -250 and seen[0]["balance_after"] == 1_500
    assert [t["balance_after"] for t in seen[1:]] == [1_500, 1_000, 600, 300, 100]
    assert seen[-1]["reference"] == "deposit:0"
    r = await client.get(
        "/api/v1/ledger/transactions", headers=user.headers, params={"cursor": "!!"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_CURSOR"

    r = await client.get("/api/v1/ledger/statement.csv", headers=user.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["amount"] for row in rows] == ["1.00", "2.00", "3.00", "4.00", "5.00", "-2.50"]
    assert rows[-1]["amount_minor"] == "-250"
    r = await client.get(
        "/api/v1/ledger/statement.csv",
        headers=user.headers,
        params={"from": "2020-01-01", "to": "2020-01-31"},
    )
    assert r.status_code == 200 and len(r.text.strip().splitlines()) == 1
    r = await client.get(
        "/api/v1/ledger/statement.csv",
        headers=user.headers,
        params={"from": "2020-02-01", "to": "2020-01-01"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_RANGE"

    r = await client.get("/api/admin/ledger/trial-balance", headers=user.headers)
    assert r.status_code == 403
    r = await client.get("/api/admin/ledger/trial-balance", headers=admin.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["balanced"] is True and body["mismatches"] == []
    assert body["currencies"] == [
        {
            "currency": "USD",
            "balance": 0,
            "pending_debits": 250,
            "pending_credits": 250,
            "accounts": 3,
            "balanced": True,
        }
    ]
