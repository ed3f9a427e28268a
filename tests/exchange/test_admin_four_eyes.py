"""Four eyes on resolution: an administrator with a stake in a market cannot resolve it
(issue 12 item 9)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.exchange.conftest import fund


async def _order(client: httpx.AsyncClient, user: Any, ticker: str, **body: Any) -> Any:
    r = await client.post(
        "/api/v1/orders",
        json={"ticker": ticker, "action": "buy", "count": 1, **body},
        headers=user.headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_an_admin_with_a_stake_cannot_resolve_the_market(
    client: httpx.AsyncClient,
    user_factory: Any,
    kyc_tier: Any,
    trader: Any,
    market_factory: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ticker = await market_factory()
    admin, other = await user_factory(admin=True), await user_factory(admin=True)
    await kyc_tier(admin.id, "standard")
    await fund(sessionmaker, admin.id, 10_000)
    b = await trader()

    async def resolve(who: Any) -> httpx.Response:
        return await client.post(
            f"/api/admin/markets/{ticker}/resolve", json={"result": "yes"}, headers=who.headers
        )

    # A resting order is a stake.
    resting = await _order(client, admin, ticker, side="yes", yes_price=40)
    assert resting["status"] == "resting"
    r = await resolve(admin)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "CONFLICT_OF_INTEREST"), r.text
    # Filled: now a position, no resting order; still a stake.
    await _order(client, b, ticker, side="no", no_price=60)
    orders = await client.get("/api/v1/orders", params={"ticker": ticker}, headers=admin.headers)
    assert all(o["status"] != "resting" for o in orders.json()["items"])
    r = await resolve(admin)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "CONFLICT_OF_INTEREST"), r.text
    market = (await client.get(f"/api/v1/markets/{ticker}", headers=b.headers)).json()
    assert market["status"] == "open" and market.get("result") in (None, "")
    # An administrator without a stake resolves it.
    r = await resolve(other)
    assert r.status_code == 200, r.text
    assert r.json()["result"] == "yes"
