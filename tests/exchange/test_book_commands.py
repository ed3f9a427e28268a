"""The book-command unit of work, through both order surfaces of a real `pull api` process:
batches across markets in opposite orders never deadlock into an error, restricted accounts
can always cancel and decrease, and the money invariants hold after concurrent load."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.identity import service as identity
from tests.exchange.conftest import check_invariants
from tests.exchange.kalshi_support import Bot, new_key, register_key

Maker = async_sessionmaker[AsyncSession]


def _buy(ticker: str, price: int, **extra: Any) -> dict[str, Any]:
    return {
        "ticker": ticker,
        "side": "yes",
        "action": "buy",
        "count": 1,
        "yes_price": price,
        **extra,
    }


async def _bot(client: httpx.AsyncClient, user: Any) -> Bot:
    key = new_key()
    key_id = await register_key(client, user.headers, key)
    return Bot(user_id=user.id, key_id=key_id, key=key, bearer=user.headers)


async def test_crossed_batches_never_deadlock_into_errors(
    api_server: str, trader: Any, market_factory: Any, sessionmaker: Maker
) -> None:
    """Batches over [A, B] and [B, A] at once, on the app API and the Trade API: each item
    placed, no 5xx (before the unit of work, PostgreSQL's deadlock detector answered 500)."""
    a, b = await market_factory(), await market_factory()
    users = [await trader(cents=50_000) for _ in range(16)]
    async with httpx.AsyncClient(base_url=api_server, timeout=60) as c:
        bots = [await _bot(c, u) for u in users[8:]]

        async def app_batch(i: int, user: Any) -> httpx.Response:
            tickers = [a, b] if i % 2 else [b, a]
            body = {"orders": [_buy(t, 10 + i) for t in tickers]}
            return await c.post("/api/v1/orders/batch", json=body, headers=user.headers)

        async def trade_batch(i: int, bot: Bot) -> httpx.Response:
            tickers = [a, b] if i % 2 else [b, a]
            body = {"orders": [_buy(t, 30 + i) for t in tickers]}
            return await bot.request(c, "POST", "/portfolio/orders/batched", json=body)

        for _round in range(3):
            answers = await asyncio.gather(
                *(app_batch(i, u) for i, u in enumerate(users[:8])),
                *(trade_batch(i, bot) for i, bot in enumerate(bots)),
            )
            assert [r.status_code for r in answers] == [201] * 8 + [200] * 8, [
                (r.status_code, r.text[:200]) for r in answers if r.status_code >= 300
            ]
            for r in answers:
                assert all(item["error"] is None for item in r.json()["orders"]), r.text
    async with sessionmaker() as s:
        await check_invariants(s, [a, b])


async def test_restricted_accounts_cancel_and_decrease_on_both_surfaces(
    api_server: str, trader: Any, market_factory: Any, sessionmaker: Maker
) -> None:
    ticker = await market_factory()
    user = await trader(cents=50_000)
    async with httpx.AsyncClient(base_url=api_server, timeout=30) as c:
        bot = await _bot(c, user)
        ids = []
        for price in (10, 11, 12, 13, 14, 15):
            r = await c.post(
                "/api/v1/orders", json=_buy(ticker, price, count=5), headers=user.headers
            )
            assert r.status_code == 201, r.text
            ids.append(r.json()["order_id"])
        async with sessionmaker() as s, s.begin():
            await identity.restrict_user(
                session=s, user_id=user.id, reason="test: returned deposit"
            )
        h = user.headers
        # Risk-adding commands are refused on both surfaces ...
        r = await c.post("/api/v1/orders", json=_buy(ticker, 20), headers=h)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "ACCOUNT_RESTRICTED")
        r = await c.post("/api/v1/orders/batch", json={"orders": [_buy(ticker, 20)]}, headers=h)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "ACCOUNT_RESTRICTED")
        r = await c.post(
            f"/api/v1/orders/{ids[0]}/amend", json={"yes_price": 20, "count": 5}, headers=h
        )
        assert (r.status_code, r.json()["error"]["code"]) == (403, "ACCOUNT_RESTRICTED")
        r = await bot.request(c, "POST", "/portfolio/orders", json=_buy(ticker, 20))
        assert (r.status_code, r.json()["error"]["code"]) == (403, "ACCOUNT_RESTRICTED")
        r = await bot.request(
            c, "POST", f"/portfolio/orders/{ids[0]}/amend", json={"yes_price": 20, "count": 5}
        )
        assert (r.status_code, r.json()["error"]["code"]) == (403, "ACCOUNT_RESTRICTED")
        # ... and risk-reducing ones go through on both.
        r = await c.post(f"/api/v1/orders/{ids[0]}/decrease", json={"reduce_by": 2}, headers=h)
        assert r.status_code == 200 and r.json()["remaining_count"] == 3, r.text
        r = await c.delete(f"/api/v1/orders/{ids[1]}", headers=h)
        assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
        r = await c.request("DELETE", "/api/v1/orders/batch", json={"ids": [ids[2]]}, headers=h)
        assert r.status_code == 200 and r.json()["orders"][0]["error"] is None, r.text
        r = await bot.request(
            c, "POST", f"/portfolio/orders/{ids[3]}/decrease", json={"reduce_by": 1}
        )
        assert r.status_code == 200 and r.json()["order"]["remaining_count"] == 4, r.text
        r = await bot.request(c, "DELETE", f"/portfolio/orders/{ids[4]}")
        assert r.status_code == 200 and r.json()["order"]["status"] == "canceled", r.text
        r = await bot.request(c, "DELETE", "/portfolio/orders/batched", json={"ids": [ids[5]]})
        assert r.status_code == 200 and r.json()["orders"][0]["error"] is None, r.text
    async with sessionmaker() as s:
        await check_invariants(s, [ticker])
