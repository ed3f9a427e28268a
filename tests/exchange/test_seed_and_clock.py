"""Demo data and the exchange clock (markets open and close on their own, orders expire)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.exchange import service
from pull.exchange.activities import clock_tick
from pull.exchange.schemas import OrderCreate
from pull.exchange.seed import seed_exchange
from pull.identity.seed import seed_identity
from tests.exchange.conftest import check_invariants, held

Maker = async_sessionmaker[AsyncSession]


async def test_seed_is_a_living_exchange_and_idempotent(
    sessionmaker: Maker, settings: Settings
) -> None:
    for _ in range(2):
        async with sessionmaker() as s, s.begin():
            await seed_identity(s, settings)
            await seed_exchange(s, settings)
    async with sessionmaker() as s:
        page = await service.list_markets(session=s, status="open")
        assert len(page.items) == 4
        for m in page.items:
            assert m.yes_bid is not None and m.yes_ask is not None and m.yes_bid < m.yes_ask
            book = await service.get_orderbook(session=s, ticker=m.ticker)
            assert len(book.yes) == 5 and len(book.no) == 5
        await check_invariants(s, [m.ticker for m in page.items])


async def test_clock_opens_closes_and_expires(
    sessionmaker: Maker, market_factory: Any, trader: Any
) -> None:
    """End states only: a `pull worker` started by another test may run its own clock too."""
    now = dt.datetime.now(dt.UTC)
    later = await market_factory(open_market=False, open_time=now + dt.timedelta(seconds=2))
    soon = await market_factory(close_in=dt.timedelta(seconds=4))
    a = await trader()
    async with sessionmaker() as s, s.begin():
        resting = await service.create_order(
            session=s,
            user_id=a.id,
            data=OrderCreate(ticker=soon, side="yes", action="buy", count=5, yes_price=30),
        )
        expiring = await service.create_order(
            session=s,
            user_id=a.id,
            data=OrderCreate(
                ticker=soon,
                side="no",
                action="buy",
                count=5,
                no_price=30,
                expiration_ts=int(time.time()) + 2,
            ),
        )
    await clock_tick(sessionmaker)
    async with sessionmaker() as s:
        assert (await service.get_market(session=s, ticker=later)).status == "initialized"
        assert await held(s, a.id) == 300
    time.sleep(2.5)
    await clock_tick(sessionmaker)
    async with sessionmaker() as s:
        assert (await service.get_market(session=s, ticker=later)).status == "open"
        assert (await service.get_market(session=s, ticker=soon)).status == "open"
        o = await service.get_order(session=s, user_id=a.id, order_id=expiring.order_id)
        assert o.status == "canceled" and o.cancel_reason == "expired"
        assert await held(s, a.id) == 150
    time.sleep(2.0)
    await clock_tick(sessionmaker)
    async with sessionmaker() as s:
        assert (await service.get_market(session=s, ticker=soon)).status == "closed"
        o = await service.get_order(session=s, user_id=a.id, order_id=resting.order_id)
        assert o.status == "canceled" and o.cancel_reason == "market_closed"
        assert await held(s, a.id) == 0
        await check_invariants(s, [soon, later])
