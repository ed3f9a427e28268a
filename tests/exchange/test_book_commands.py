"""The book-command unit of work, through both order surfaces of a real `pull api` process:
batches across markets in opposite orders never deadlock into an error, restricted accounts
can always cancel and decrease, and the money invariants hold after concurrent load."""

from __future__ import annotations

import asyncio
import collections
import random
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.exchange import service
from pull.identity import service as identity
from tests.conftest import Services, start_api_process, stop_process
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


# --- the done-when chaos run: both surfaces, batches across markets, many clients -------------

MARKETS = 4
CLIENTS_PER_SURFACE = 6
STEPS = 14
NO_ANSWER = 599


class Client:
    """One trader on one surface, remembering its resting orders and its last batch."""

    def __init__(self, http: httpx.AsyncClient, user: Any, bot: Bot | None, seed: int) -> None:
        self.http, self.user, self.bot = http, user, bot
        self.rng = random.Random(seed)
        self.resting: list[str] = []
        self.last_batch: list[dict[str, Any]] | None = None
        self.statuses: list[int] = []

    async def send(self, method: str, app_path: str, trade_path: str, body: Any = None) -> Any:
        kw = {} if body is None else {"json": body}
        try:
            if self.bot is None:
                r = await self.http.request(method, app_path, headers=self.user.headers, **kw)
            else:
                r = await self.bot.request(self.http, method, trade_path, **kw)
        except httpx.TransportError:
            r = httpx.Response(NO_ANSWER)  # the server dropped the request: counted as a 5xx
        self.statuses.append(r.status_code)
        return r

    def order(self, ticker: str) -> dict[str, Any]:
        rng = self.rng
        side = rng.choice(["yes", "no"])
        body: dict[str, Any] = {
            "ticker": ticker,
            "side": side,
            "action": rng.choice(["buy", "buy", "buy", "sell"]),
            "count": rng.randint(1, 6),
            f"{side}_price": rng.randint(38, 62),
            "time_in_force": rng.choice(
                ["good_till_canceled", "good_till_canceled", "immediate_or_cancel"]
            ),
        }
        if rng.random() < 0.3:
            body["client_order_id"] = f"c-{uuid.uuid4().hex[:16]}"
        return body

    def remember(self, orders: list[dict[str, Any]]) -> None:
        for o in orders:
            if o and o.get("status") == "resting":
                self.resting.append(o["order_id"])

    async def step(self, tickers: list[str]) -> None:
        rng = self.rng
        op = rng.choice(["batch", "batch", "batch", "one", "cancel", "decrease", "amend", "replay"])
        if op in ("cancel", "decrease", "amend") and not self.resting:
            op = "batch"
        if op == "replay" and self.last_batch is None:
            op = "batch"
        if op in ("batch", "replay"):
            if op == "batch":
                picked = rng.sample(tickers, rng.randint(2, len(tickers)))  # a random order
                self.last_batch = [self.order(t) for t in picked]
            assert self.last_batch is not None
            r = await self.send(
                "POST",
                "/api/v1/orders/batch",
                "/portfolio/orders/batched",
                {"orders": self.last_batch},
            )
            if r.status_code < 300:
                self.remember([item["order"] for item in r.json()["orders"] if item["order"]])
        elif op == "one":
            r = await self.send(
                "POST", "/api/v1/orders", "/portfolio/orders", self.order(rng.choice(tickers))
            )
            if r.status_code < 300:
                self.remember([r.json() if self.bot is None else r.json()["order"]])
        else:
            oid = self.resting.pop(rng.randrange(len(self.resting)))
            if op == "cancel" and rng.random() < 0.5:
                ids = [oid, *self.resting[:2]]
                del self.resting[:2]
                await self.send(
                    "DELETE", "/api/v1/orders/batch", "/portfolio/orders/batched", {"ids": ids}
                )
            elif op == "cancel":
                await self.send("DELETE", f"/api/v1/orders/{oid}", f"/portfolio/orders/{oid}")
            elif op == "decrease":
                path = f"/orders/{oid}/decrease"
                r = await self.send("POST", "/api/v1" + path, "/portfolio" + path, {"reduce_by": 1})
                if r.status_code < 300:
                    self.resting.append(oid)
            else:
                path = f"/orders/{oid}/amend"
                body = {"yes_price": rng.randint(38, 62), "count": rng.randint(1, 8)}
                r = await self.send("POST", "/api/v1" + path, "/portfolio" + path, body)
                if r.status_code < 300:
                    self.resting.append(oid)


async def test_both_surfaces_under_concurrent_cross_market_batches_keep_every_invariant(
    services: Services, trader: Any, market_factory: Any, sessionmaker: Maker
) -> None:
    """Many clients on both surfaces of a two-worker `pull api` send batches over random
    market orders, single orders, cancels, batch cancels, decreases, amends and replays at once:
    no answer is a 5xx, and every invariant of docs/exchange.md holds afterwards."""
    proc, url = start_api_process(
        services, start_timeout=120, API_WORKERS="2", RATE_LIMIT_ENABLED="false"
    )
    try:
        tickers = [await market_factory(maker_fee_bps=175) for _ in range(MARKETS)]
        users = [await trader(cents=60_000) for _ in range(2 * CLIENTS_PER_SURFACE)]
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            clients = [
                Client(http, u, None if i < CLIENTS_PER_SURFACE else await _bot(http, u), i)
                for i, u in enumerate(users)
            ]

            async def run(c: Client) -> None:
                for _ in range(STEPS):
                    await c.step(tickers)

            await asyncio.gather(*(run(c) for c in clients))
    finally:
        stop_process(proc)
    statuses = [s for c in clients for s in c.statuses]
    print("answers by status:", dict(sorted(collections.Counter(statuses).items())))
    assert not [s for s in statuses if s >= 500], sorted(statuses)
    assert sum(s < 300 for s in statuses) > len(statuses) // 2, sorted(statuses)
    async with sessionmaker() as s:
        await check_invariants(s, tickers)
        volume = [(await service.get_market(session=s, ticker=t)).volume for t in tickers]
    assert all(v > 0 for v in volume), volume  # the load really traded in every market
