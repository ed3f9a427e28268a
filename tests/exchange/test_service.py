"""The exchange service against the real database and ledger."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.exchange import service
from pull.exchange.engine import taker_fee_for
from pull.exchange.schemas import OrderAmend, OrderCreate, OrderDecrease
from pull.kit.errors import AppError
from tests.exchange.conftest import cash, check_invariants, held

Maker = async_sessionmaker[AsyncSession]


async def place(maker: Maker, user: Any, **kw: Any) -> Any:
    async with maker() as s, s.begin():
        return await service.create_order(session=s, user_id=user.id, data=OrderCreate(**kw))


async def refused(maker: Maker, user: Any, **kw: Any) -> AppError:
    with pytest.raises(AppError) as e:
        await place(maker, user, **kw)
    return e.value


async def test_mint_transfer_and_net(sessionmaker: Maker, market_factory: Any, trader: Any) -> None:
    t = await market_factory()
    a, b, c = await trader(), await trader(), await trader()
    r = await place(sessionmaker, a, ticker=t, side="yes", action="buy", count=10, yes_price=60)
    assert r.status == "resting" and r.remaining_count == 10
    async with sessionmaker() as s:
        assert await held(s, a.id) == 600
        await check_invariants(s, [t])
    fill = await place(sessionmaker, b, ticker=t, side="no", action="buy", count=10, no_price=45)
    assert fill.status == "executed" and fill.fill_count == 10
    assert fill.taker_fill_cost == 400 and fill.taker_fees == taker_fee_for(10, 60, 700)
    async with sessionmaker() as s:
        assert await held(s, a.id) == 0
        assert await cash(s, b.id) == 100_000 - 400 - fill.taker_fees
        await check_invariants(s, [t])
        m = await service.get_market(session=s, ticker=t)
        assert m.open_interest == 10 and m.last_price == 60 and m.volume == 10
    # a sells 4 YES to c: contracts move, no new pair
    await place(sessionmaker, a, ticker=t, side="yes", action="sell", count=4, yes_price=70)
    await place(sessionmaker, c, ticker=t, side="yes", action="buy", count=4, yes_price=70)
    # b buys YES against its NO: nets 3 pairs away
    await place(sessionmaker, c, ticker=t, side="yes", action="sell", count=3, yes_price=65)
    await place(sessionmaker, b, ticker=t, side="yes", action="buy", count=3, yes_price=65)
    async with sessionmaker() as s:
        await check_invariants(s, [t])
        pos = {p.ticker: p for p in (await service.list_positions(session=s, user_id=b.id)).items}
        assert pos[t].position == -7
        m = await service.get_market(session=s, ticker=t)
        assert m.open_interest == 7
        fills = await service.list_fills(session=s, user_id=b.id)
        assert [f.is_taker for f in fills.items] == [True, True]


async def test_refusals_change_nothing(
    sessionmaker: Maker, market_factory: Any, trader: Any
) -> None:
    t = await market_factory()
    closed = await market_factory(open_market=False)
    poor = await trader(cents=100)
    a = await trader()
    e = await refused(sessionmaker, poor, ticker=t, side="yes", action="buy", count=5, yes_price=50)
    assert e.code == "INSUFFICIENT_FUNDS" and e.status_code == 409
    e = await refused(
        sessionmaker, a, ticker=closed, side="yes", action="buy", count=1, yes_price=5
    )
    assert e.code == "MARKET_CLOSED"
    e = await refused(sessionmaker, a, ticker=t, side="yes", action="buy", count=1, no_price=100)
    assert e.code == "INVALID_PRICE"
    e = await refused(sessionmaker, a, ticker=t, side="yes", action="buy", count=1)
    assert e.code == "INVALID_PRICE"
    e = await refused(sessionmaker, a, ticker=t, side="yes", action="sell", count=1, yes_price=5)
    assert e.code == "INSUFFICIENT_POSITION"
    e = await refused(
        sessionmaker, a, ticker="NOPE", side="yes", action="buy", count=1, yes_price=5
    )
    assert e.code == "MARKET_NOT_FOUND"
    await place(sessionmaker, a, ticker=t, side="yes", action="buy", count=5, yes_price=50)
    e = await refused(
        sessionmaker, a, ticker=t, side="no", action="buy", count=1, no_price=50, post_only=True
    )
    assert e.code == "POST_ONLY_WOULD_CROSS"
    unverified = await trader(tier="none")
    e = await refused(
        sessionmaker, unverified, ticker=t, side="yes", action="buy", count=1, yes_price=5
    )
    assert e.code == "KYC_REQUIRED" and e.status_code == 403
    big = await trader(cents=10_000_000, tier="basic")
    e = await refused(
        sessionmaker, big, ticker=t, side="yes", action="buy", count=1000, yes_price=60
    )
    assert e.code == "LIMIT_EXCEEDED"
    async with sessionmaker() as s:
        assert await cash(s, poor.id) == 100 and await cash(s, big.id) == 10_000_000
        assert (await service.list_orders(session=s, user_id=poor.id)).items == []
        await check_invariants(s, [t])


async def test_client_order_id_is_idempotent(
    sessionmaker: Maker, market_factory: Any, trader: Any
) -> None:
    t = await market_factory()
    a = await trader()
    kw = dict(ticker=t, side="yes", action="buy", count=3, yes_price=40, client_order_id="c-1")
    first = await place(sessionmaker, a, **kw)
    again = await place(sessionmaker, a, **kw)
    assert again.order_id == first.order_id
    e = await refused(sessionmaker, a, **{**kw, "count": 4})
    assert e.code == "CLIENT_ORDER_ID_CONFLICT"
    async with sessionmaker() as s:
        assert await held(s, a.id) == 120
        await check_invariants(s, [t])


async def test_cancel_decrease_amend(sessionmaker: Maker, market_factory: Any, trader: Any) -> None:
    t = await market_factory()
    a, b = await trader(), await trader()
    o = await place(sessionmaker, a, ticker=t, side="yes", action="buy", count=10, yes_price=40)
    async with sessionmaker() as s, s.begin():
        d = await service.decrease_order(
            session=s, user_id=a.id, order_id=o.order_id, data=OrderDecrease(reduce_by=4)
        )
    assert d.remaining_count == 6
    async with sessionmaker() as s, s.begin():
        assert await held(s, a.id) == 240
        am = await service.amend_order(
            session=s, user_id=a.id, order_id=o.order_id, data=OrderAmend(yes_price=45, count=8)
        )
    assert am.remaining_count == 8 and am.yes_price == 45
    async with sessionmaker() as s:
        assert await held(s, a.id) == 360
        await check_invariants(s, [t])
    await place(sessionmaker, b, ticker=t, side="no", action="buy", count=3, no_price=55)
    async with sessionmaker() as s, s.begin():
        c = await service.cancel_order(session=s, user_id=a.id, order_id=o.order_id)
    assert c.status == "canceled" and c.fill_count == 3
    async with sessionmaker() as s:
        assert await held(s, a.id) == 0
        assert await cash(s, a.id) == 100_000 - 3 * 45
        await check_invariants(s, [t])
    with pytest.raises(AppError) as e:
        async with sessionmaker() as s, s.begin():
            await service.cancel_order(session=s, user_id=a.id, order_id=o.order_id)
    assert e.value.code == "ORDER_NOT_RESTING"
    with pytest.raises(AppError) as e:
        async with sessionmaker() as s, s.begin():
            await service.cancel_order(session=s, user_id=b.id, order_id=o.order_id)
    assert e.value.code == "ORDER_NOT_FOUND"
