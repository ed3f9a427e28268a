"""Orders through the HTTP API against the sandbox broker, fills applied by the consumer."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.ledger import service as ledger
from tests.brokerage.conftest import Drain, TraderFactory

pytestmark = pytest.mark.usefixtures("market_open")


async def _balance(maker: async_sessionmaker[AsyncSession], user_id: uuid.UUID) -> ledger.Balance:
    async with maker() as s:
        return await ledger.get_balance(session=s, user_id=user_id)


async def test_market_buy_holds_then_fill_posts_cost_and_releases_buffer(
    trader_factory: TraderFactory, drain: Drain, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    t = await trader_factory(cash=100_000)
    quote = await t.get("/quotes/AAPL")
    ask = Decimal(quote["ask"])
    order = await t.order(symbol="AAPL", side="buy", type="market", qty="0.5")
    assert order["status"] in ("new", "accepted")
    held = order["hold_cents"]
    assert held >= int(Decimal("0.5") * ask * 100)
    bal = await _balance(sessionmaker, t.user.id)
    assert bal.available == 100_000 - held
    applied = await drain()
    assert applied >= 2
    filled = await t.get(f"/orders/{order['id']}")
    assert filled["status"] == "filled"
    assert Decimal(filled["filled_qty"]) == Decimal("0.5")
    cost = filled["filled_cents"]
    assert cost == int((Decimal("0.5") * ask * 100).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    assert filled["hold_cents"] == 0
    bal = await _balance(sessionmaker, t.user.id)
    assert bal.available == 100_000 - cost and bal.held == 0
    positions = (await t.get("/positions"))["items"]
    assert positions[0]["symbol"] == "AAPL" and Decimal(positions[0]["qty"]) == Decimal("0.5")
    assert positions[0]["cost_cents"] == cost
    fills = (await t.get(f"/orders/{order['id']}/fills"))["items"]
    assert len(fills) == 1 and fills[0]["amount_cents"] == cost
    assert await drain() == 0  # nothing new: applied once
    async with sessionmaker() as s:
        assert (await ledger.trial_balance(session=s)).balanced
