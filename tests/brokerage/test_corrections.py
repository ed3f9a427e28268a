"""Trade corrections from the broker (`trade_bust`, `trade_correct`) move positions, cash and
the ledger exactly once: a replay of the stream changes nothing, a late fill report from
before the correction cannot undo it, and the admin reconciliation finds PULL and the broker
in agreement (cash journaled back for orders that were settled already)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.brokerage.money import cum_cents
from pull.brokerage.providers.sandbox import SandboxBroker
from pull.ledger import service as ledger
from tests.brokerage.conftest import Drain, Trader, TraderFactory
from tests.conftest import UserFactory

pytestmark = pytest.mark.usefixtures("market_open")


async def _ids(maker: async_sessionmaker[AsyncSession], order_id: str) -> tuple[str, str]:
    async with maker() as s:
        row = (
            await s.execute(
                text(
                    "SELECT broker_account_id, broker_order_id FROM brokerage_orders WHERE id = :i"
                ),
                {"i": order_id},
            )
        ).one()
    return str(row[0]), str(row[1])


async def _cash(maker: async_sessionmaker[AsyncSession], t: Trader) -> int:
    async with maker() as s:
        bal = await ledger.get_balance(session=s, user_id=t.user.id)
        assert (await ledger.trial_balance(session=s)).balanced
        return int(bal.available)


async def _position(t: Trader, symbol: str) -> dict[str, str] | None:
    items = (await t.get("/positions"))["items"]
    return next((p for p in items if p["symbol"] == symbol), None)


async def test_a_bust_and_a_price_correction_are_applied_once(
    trader_factory: TraderFactory,
    user_factory: UserFactory,
    drain: Drain,
    sandbox: SandboxBroker,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    t = await trader_factory(cash=100_000)
    admin = await user_factory(admin=True)
    buy = await t.order(symbol="BTC/USD", side="buy", qty="0.002", time_in_force="gtc")
    await drain()
    filled = await t.get(f"/orders/{buy['id']}")
    assert filled["status"] == "filled"
    paid = filled["filled_cents"]
    assert await _cash(sessionmaker, t) == 100_000 - paid
    account, broker_order = await _ids(sessionmaker, buy["id"])

    # half of the fill is busted: half the shares and their cost go back
    await sandbox.correct_fill(account_id=account, order_id=broker_order, bust_qty=Decimal("0.001"))
    await drain()
    busted = await t.get(f"/orders/{buy['id']}")
    assert busted["status"] == "filled" and busted["filled_qty"] == "0.001", busted
    avg = Decimal(busted["filled_avg_price"])
    assert busted["filled_cents"] == cum_cents(Decimal("0.001"), avg)
    assert await _cash(sessionmaker, t) == 100_000 - busted["filled_cents"]
    pos = await _position(t, "BTC/USD")
    assert pos is not None and Decimal(pos["qty"]) == Decimal("0.001")
    fills = (await t.get(f"/orders/{buy['id']}/fills"))["items"]
    assert any(Decimal(f["qty"]) == Decimal("-0.001") for f in fills), fills

    # the price of what is left is corrected down by 1%
    lower = (avg * Decimal("0.99")).quantize(Decimal("0.01"))
    await sandbox.correct_fill(account_id=account, order_id=broker_order, price=lower)
    await drain()
    corrected = await t.get(f"/orders/{buy['id']}")
    assert corrected["filled_cents"] == cum_cents(Decimal("0.001"), lower), corrected
    cash_after = await _cash(sessionmaker, t)
    assert cash_after == 100_000 - corrected["filled_cents"]

    # the whole stream again (the original fill report included): nothing moves twice
    async with sessionmaker() as s, s.begin():
        await s.execute(text("DELETE FROM brokerage_cursors"))
        await s.execute(text("DELETE FROM brokerage_events"))
    await drain()
    again = await t.get(f"/orders/{buy['id']}")
    assert (again["filled_qty"], again["filled_cents"]) == ("0.001", corrected["filled_cents"])
    assert await _cash(sessionmaker, t) == cash_after
    pos = await _position(t, "BTC/USD")
    assert pos is not None and Decimal(pos["qty"]) == Decimal("0.001")

    # a sale, busted in full: the shares come back, the proceeds leave again
    sell = await t.order(symbol="BTC/USD", side="sell", qty="0.0005", time_in_force="gtc")
    await drain()
    sold = await t.get(f"/orders/{sell['id']}")
    assert sold["status"] == "filled"
    assert await _cash(sessionmaker, t) == cash_after + sold["filled_cents"]
    _, broker_sell = await _ids(sessionmaker, sell["id"])
    await sandbox.correct_fill(account_id=account, order_id=broker_sell, bust_qty=Decimal("0.0005"))
    await drain()
    assert await _cash(sessionmaker, t) == cash_after
    pos = await _position(t, "BTC/USD")
    assert pos is not None and Decimal(pos["qty"]) == Decimal("0.001")

    # PULL and the broker agree: positions and cash (the corrections' journals executed)
    r = await t.http.post(
        "/api/admin/brokerage/reconcile", params={"grace_seconds": 0}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["alerts"] == 0, r.json()
    r = await t.http.get("/api/admin/brokerage/alerts", headers=admin.headers)
    assert r.json()["items"] == [], r.json()
