"""Trade corrections from the broker (`trade_bust`, `trade_correct`) move positions, cash and
the ledger exactly once: a replay of the stream changes nothing, a late fill report from
before the correction cannot undo it, and the admin reconciliation finds PULL and the broker
in agreement (cash journaled back for orders that were settled already). A correction the
stream dropped is healed by reconciliation, once; the portfolio's FIFO tax lots follow busts
and corrections."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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


async def test_reconciliation_heals_a_dropped_correction_once(
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
    paid = (await t.get(f"/orders/{buy['id']}"))["filled_cents"]
    account, broker_order = await _ids(sessionmaker, buy["id"])

    # the broker busts half the fill and the stream loses the event: the consumer's cursor
    # moves past it unapplied
    await sandbox.correct_fill(account_id=account, order_id=broker_order, bust_qty=Decimal("0.001"))
    async with sessionmaker() as s, s.begin():
        last = await s.scalar(
            text("SELECT id FROM brokerage_sandbox_events ORDER BY seq DESC LIMIT 1")
        )
        await s.execute(
            text(
                "INSERT INTO brokerage_cursors (name, last_id) VALUES ('trades', :i) "
                "ON CONFLICT (name) DO UPDATE SET last_id = EXCLUDED.last_id"
            ),
            {"i": last},
        )
    assert await drain() == 0
    stale = await t.get(f"/orders/{buy['id']}")
    assert stale["filled_qty"] == "0.002" and await _cash(sessionmaker, t) == 100_000 - paid

    r = await t.http.post(
        "/api/admin/brokerage/reconcile", params={"grace_seconds": 0}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["corrections_healed"] == 1 and r.json()["alerts"] == 0, r.json()
    healed = await t.get(f"/orders/{buy['id']}")
    assert healed["filled_qty"] == "0.001", healed
    assert healed["filled_cents"] == cum_cents(
        Decimal("0.001"), Decimal(healed["filled_avg_price"])
    )
    cash = await _cash(sessionmaker, t)
    assert cash == 100_000 - healed["filled_cents"]
    pos = await _position(t, "BTC/USD")
    assert pos is not None and Decimal(pos["qty"]) == Decimal("0.001")
    fills = (await t.get(f"/orders/{buy['id']}/fills"))["items"]
    assert [Decimal(f["qty"]) for f in fills].count(Decimal("-0.001")) == 1, fills

    # healed once: another run finds nothing, and the dropped event arriving after all (the
    # stream replayed from the start) moves nothing again
    r = await t.http.post(
        "/api/admin/brokerage/reconcile", params={"grace_seconds": 0}, headers=admin.headers
    )
    assert r.json()["corrections_healed"] == 0 and r.json()["alerts"] == 0, r.json()
    async with sessionmaker() as s, s.begin():
        await s.execute(text("DELETE FROM brokerage_cursors WHERE name = 'trades'"))
    await drain()
    again = await t.get(f"/orders/{buy['id']}")
    assert (again["filled_qty"], again["filled_cents"]) == ("0.001", healed["filled_cents"])
    assert await _cash(sessionmaker, t) == cash
    assert len((await t.get(f"/orders/{buy['id']}/fills"))["items"]) == len(fills)
    r = await t.http.get("/api/admin/brokerage/alerts", headers=admin.headers)
    mine = [a for a in r.json()["items"] if a.get("user_id") == str(t.user.id)]
    assert mine == [], mine


async def _holding(t: Trader, symbol: str) -> dict[str, Any]:
    r = await t.http.get("/api/v1/portfolio", headers=t.headers)
    assert r.status_code == 200, r.text
    [h] = [h for h in r.json()["holdings"] if h["symbol"] == symbol]
    return dict(h)


async def test_tax_lots_follow_busts_and_corrections(
    trader_factory: TraderFactory,
    drain: Drain,
    sandbox: SandboxBroker,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    t = await trader_factory(cash=200_000)
    await sandbox.set_quote(
        symbol="AAPL",
        bid=Decimal("199.00"),
        ask=Decimal("200.00"),
        bid_size=Decimal(100),
        ask_size=Decimal(100),
    )
    buy = await t.order(symbol="AAPL", side="buy", type="market", qty="2")
    await drain()
    assert (await t.get(f"/orders/{buy['id']}"))["filled_cents"] == 40_000
    account, broker_buy = await _ids(sessionmaker, buy["id"])

    # one of the two shares busted: the lot is one share at its cost, not a sale
    await sandbox.correct_fill(account_id=account, order_id=broker_buy, bust_qty=Decimal(1))
    await drain()
    h = await _holding(t, "AAPL")
    assert Decimal(h["quantity"]) == 1 and h["cost_basis"] == 20_000, h
    assert h["realized_pnl"] == 0, h

    # the price corrected to 190: the lot's cost follows
    await sandbox.correct_fill(account_id=account, order_id=broker_buy, price=Decimal(190))
    await drain()
    h = await _holding(t, "AAPL")
    assert Decimal(h["quantity"]) == 1 and h["cost_basis"] == 19_000 and h["realized_pnl"] == 0
    [pos] = [p for p in (await t.get("/positions"))["items"] if p["symbol"] == "AAPL"]
    assert pos["cost_cents"] == h["cost_basis"] and Decimal(pos["qty"]) == 1

    # half of it sold (a realized gain), then the sale busted in full: the half comes back
    # to the lot and the gain is gone
    sell = await t.order(symbol="AAPL", side="sell", type="market", qty="0.5")
    await drain()
    sold = await t.get(f"/orders/{sell['id']}")
    h = await _holding(t, "AAPL")
    assert Decimal(h["quantity"]) == Decimal("0.5") and h["cost_basis"] == 9_500, h
    assert h["realized_pnl"] == sold["filled_cents"] - 9_500
    _, broker_sell = await _ids(sessionmaker, sell["id"])
    await sandbox.correct_fill(account_id=account, order_id=broker_sell, bust_qty=Decimal("0.5"))
    await drain()
    h = await _holding(t, "AAPL")
    assert Decimal(h["quantity"]) == 1 and h["cost_basis"] == 19_000, h
    assert h["realized_pnl"] == 0, h
