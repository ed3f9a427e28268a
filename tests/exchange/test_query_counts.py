"""List endpoints of the exchange and the Trade API cost a constant number of SQL statements
per page: the same for a page of one event or market as for a page of many (counted with an
event listener on the app's engine)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pull.exchange import service
from pull.exchange.schemas import OrderCreate
from tests.conftest import random_client_ip
from tests.exchange.kalshi_support import Bot, make_structure, new_key, register_key

Maker = async_sessionmaker[AsyncSession]


@contextlib.contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The exchange statements run on `engine` inside the block (auth and rate-limit
    statements are left out: they are the same for every request)."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "exchange_" in statement:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(random_client_ip(), 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def _trade(maker: Maker, buyer: Any, seller: Any, tickers: list[str]) -> None:
    """A fill in each market (positions for both) and a resting order left over."""
    async with maker() as s, s.begin():
        for t in tickers:
            for user, side, price, count in ((buyer, "yes", 55, 3), (seller, "no", 45, 2)):
                data = OrderCreate.model_validate(
                    {
                        "ticker": t,
                        "side": side,
                        "action": "buy",
                        "count": count,
                        f"{side}_price": price,
                    }
                )
                await service.create_order(session=s, user_id=user.id, data=data)


async def test_list_endpoints_cost_the_same_for_one_or_many(
    app: FastAPI, http: httpx.AsyncClient, trader: Any, sessionmaker: Maker
) -> None:
    await make_structure(sessionmaker, "KXONE", {"KXONE-1": ["KXONE-1-A"]})
    many = {f"KXMANY-{i}": [f"KXMANY-{i}-{x}" for x in "ABC"] for i in range(12)}
    await make_structure(sessionmaker, "KXMANY", many)
    small, large, other = await trader(), await trader(), await trader()
    await _trade(sessionmaker, small, other, ["KXONE-1-A"])
    await _trade(sessionmaker, large, other, [m for ms in many.values() for m in ms])
    bots = {}
    for name, user in (("small", small), ("large", large)):
        key = new_key()
        key_id = await register_key(http, user.headers, key)
        bots[name] = Bot(user_id=user.id, key_id=key_id, key=key, bearer=user.headers)
    engine: AsyncEngine = app.state.engine
    trade = "/trade-api/v2"

    async def cost(path: str, who: str, series: str) -> int:
        path = path.format(series=series)
        with statements(engine) as seen:
            if path.startswith(trade + "/portfolio"):
                r = await bots[who].request(http, "GET", path.removeprefix(trade))
            elif path.startswith(trade):
                r = await http.get(path)
            else:
                user = small if who == "small" else large
                r = await http.get(path, headers=user.headers)
        assert r.status_code == 200, (path, r.text)
        return len(seen)

    for path in (
        trade + "/events?series_ticker={series}&with_nested_markets=true",
        trade + "/events?series_ticker={series}&status=open",
        trade + "/events?series_ticker={series}&min_close_ts=1",
        trade + "/markets?series_ticker={series}",
        trade + "/markets?series_ticker={series}&min_close_ts=1",
        trade + "/portfolio/positions",
        trade + "/portfolio/positions?count_filter=position",
        trade + "/portfolio/orders",
        trade + "/portfolio/fills",
        "/api/v1/events?series_ticker={series}",
        "/api/v1/markets?series_ticker={series}",
        "/api/v1/orders",
        "/api/v1/positions",
        "/api/v1/fills",
    ):
        one = await cost(path, "small", "KXONE")
        lots = await cost(path, "large", "KXMANY")
        assert lots == one, f"{path}: {one} statements for one, {lots} for 12 events x 3 markets"
        assert one <= 8, (path, one)
