"""The trade event consumer's batches and the sandbox's event writes are set-based: a batch of
events is applied by the same statements, as many of them, whatever its size (arrays through
unnest, one cached statement each, instead of a VALUES list per size), and the sandbox takes
its events lock in the statement that inserts the events. Money stays exact: every fill of a
batch is applied once, and a replay of the batch changes nothing."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pull.brokerage import events
from pull.brokerage.money import cum_cents, dollars
from pull.brokerage.providers import wire
from pull.brokerage.providers.base import BrokerNotFound, BrokerOrder, OrderRequest, TradeEvent
from pull.brokerage.providers.sandbox import SandboxBroker
from pull.ledger import service as ledger
from tests.brokerage.conftest import Drain, Trader, TraderFactory

pytestmark = pytest.mark.usefixtures("market_open")


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_c: Any, _cur: Any, stmt: str, *_: Any) -> None:
        seen.append(stmt)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def _new_events(
    maker: async_sessionmaker[AsyncSession], sandbox: SandboxBroker
) -> list[TradeEvent]:
    async with maker() as s:
        since = await s.scalar(text("SELECT last_id FROM brokerage_cursors WHERE name = 'trades'"))
    return [wire.parse_event(p) for p in await sandbox.events_page(since_id=since)]


async def _buys(t: Trader, n: int) -> list[str]:
    return [
        (await t.order(symbol="BTC/USD", side="buy", notional=2_000, time_in_force="gtc"))["id"]
        for _ in range(n)
    ]


async def test_a_batch_is_the_same_statements_whatever_its_size(
    trader_factory: TraderFactory,
    drain: Drain,
    sandbox: SandboxBroker,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    t = await trader_factory(cash=1_000_000)
    await _buys(t, 1)
    await drain()  # the position and the cursor exist: what follows is the steady state
    shapes = []
    ids: list[str] = []
    for n in (2, 6):
        ids += await _buys(t, n)
        batch = await _new_events(sessionmaker, sandbox)
        assert sum(e.event == "fill" for e in batch) == n
        with statements(engine) as seen:
            assert await events.apply_batch(sessionmaker, batch) == len(batch)
        shapes.append(seen)
        with statements(engine) as again:  # a replay: claimed already, nothing applied
            assert await events.apply_batch(sessionmaker, batch) == 0
        assert not any("ledger_apply" in s for s in again)
    assert shapes[0] == shapes[1], "a statement depends on the batch's size"
    assert len(shapes[1]) <= 12, shapes[1]

    bal = None
    async with sessionmaker() as s:
        bal = await ledger.get_balance(session=s, user_id=t.user.id)
        assert (await ledger.trial_balance(session=s)).balanced
        filled = (
            await s.execute(
                text(
                    "SELECT count(*), sum(filled_cents), sum(filled_qty), sum(hold_cents) "
                    "FROM brokerage_orders WHERE user_id = :u"
                ),
                {"u": t.user.id},
            )
        ).one()
        position = (
            await s.execute(
                text(
                    "SELECT qty, cost_cents FROM brokerage_positions "
                    "WHERE user_id = :u AND symbol = 'BTC/USD'"
                ),
                {"u": t.user.id},
            )
        ).one()
        executions = await s.scalar(
            text("SELECT count(*) FROM brokerage_executions WHERE order_id = ANY(:o)"),
            {"o": [uuid.UUID(i) for i in ids]},
        )
    count, cents, qty, held = filled
    assert count == 9 and held == 0
    assert executions == 8  # each fill once
    assert position[0] == Decimal(qty) and position[1] == cents
    assert bal.available == 1_000_000 - cents and bal.held == 0


async def test_the_sandbox_locks_and_inserts_its_events_in_one_statement(
    trader_factory: TraderFactory,
    sandbox: SandboxBroker,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    t = await trader_factory(cash=100_000)
    async with sessionmaker() as s:
        account = str(
            await s.scalar(
                text("SELECT broker_account_id FROM brokerage_accounts WHERE user_id = :u"),
                {"u": t.user.id},
            )
        )
    firm = await sandbox.firm_account_id()
    firm_cash = (await sandbox.get_account(account_id=firm)).cash
    with statements(engine) as journal:  # the firm funds a customer: no locking read
        await sandbox.create_journal(
            from_account=firm, to_account=account, amount=Decimal("50.00"), description="test"
        )
    assert not any("FROM brokerage_sandbox_accounts" in s for s in journal), journal
    with pytest.raises(BrokerNotFound):
        await sandbox.create_journal(
            from_account=firm,
            to_account=str(uuid.uuid4()),
            amount=Decimal("1.00"),
            description="nobody",
        )
    assert (await sandbox.get_account(account_id=firm)).cash == firm_cash - Decimal("50.00")
    with statements(engine) as seen:
        done = await sandbox.submit_order(
            account_id=account,
            request=OrderRequest(
                symbol="BTC/USD",
                side="buy",
                type="market",
                time_in_force="gtc",
                client_order_id=uuid.uuid4().hex,
                notional=Decimal("20.00"),
            ),
        )
    assert done.status == "filled"
    inserts = [s for s in seen if "INSERT INTO brokerage_sandbox_events" in s]
    assert len(inserts) == 1 and "pg_advisory_xact_lock" in inserts[0], inserts
    assert not any(s.strip() == "SELECT pg_advisory_xact_lock($1)" for s in seen), seen
    # the order row is written once, as its fill leaves it; the position by one upsert
    assert sum("INSERT INTO brokerage_sandbox_orders" in s for s in seen) == 1, seen
    assert not any("UPDATE brokerage_sandbox_orders" in s for s in seen), seen
    assert not any("FROM brokerage_sandbox_positions" in s for s in seen), seen

    async def trade(side: str, **size: Decimal) -> BrokerOrder:
        return await sandbox.submit_order(
            account_id=account,
            request=OrderRequest(
                symbol="BTC/USD",
                side=side,
                type="market",
                time_in_force="gtc",
                client_order_id=uuid.uuid4().hex,
                **size,
            ),
        )

    again = await trade("buy", notional=Decimal("15.00"))  # onto the existing position
    assert again.filled_avg_price is not None and done.filled_avg_price is not None
    sold = await trade("sell", qty=done.filled_qty)
    assert sold.status == "filled" and sold.filled_avg_price is not None
    cost = [cum_cents(o.filled_qty, o.filled_avg_price) for o in (done, again)]
    proceeds = cum_cents(sold.filled_qty, sold.filled_avg_price)
    (position,) = await sandbox.list_positions(account_id=account)
    assert position.qty == again.filled_qty  # bought twice, the first lot sold
    # the lots cost the same price: what is left costs the second's (to a cent of rounding)
    assert abs(position.cost_basis - dollars(cost[1])) <= Decimal("0.01")
    cash = (await sandbox.get_account(account_id=account)).cash
    assert cash == Decimal("50.00") - dollars(sum(cost)) + dollars(proceeds)
    page = await sandbox.events_page(since_id=None, since=done.created_at - dt.timedelta(1))
    mine = [p for p in page if p["order"]["id"] == done.id]
    assert [p["event"] for p in mine] == ["new", "fill"]  # in the order they happened
