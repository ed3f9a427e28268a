"""Property: random sequences of orders (market, limit; buys and sells), quote moves that fill
them (partially), cancels and replaces, with the broker's trade events applied late, out of
order and duplicated, keep every cent accounted for.

After every step: the trial balance is zero; no cash goes below zero; the cash held equals
the open orders' holds; cash + holds + positions at cost - realized P&L equals what the user
was funded with; PULL's omnibus account equals buys minus sells at cost; and on the broker's
side the firm (house) account + the customer's cash + what fills paid out equals the firm's
starting cash. At the end, with every event applied (in order, then all again) and one
reconciliation run, PULL's positions and fills equal the broker's and nothing is alerted."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.brokerage import accounts, events, fills, orders
from pull.brokerage.models import (
    BrokerageAlert,
    BrokerageOrder,
    BrokeragePosition,
    SandboxAccount,
)
from pull.brokerage.money import cents_of
from pull.brokerage.providers import wire
from pull.brokerage.providers.sandbox import SandboxBroker
from pull.brokerage.providers.sandbox_engine import FIRM_CASH
from pull.brokerage.reconcile import reconcile
from pull.brokerage.schemas import OrderCreate, OrderReplace
from pull.config import Settings
from pull.kit.crypto import FieldCipher
from pull.kit.db import session_scope
from pull.kit.errors import AppError
from pull.ledger import service as ledger
from tests.brokerage.conftest import approve_kyc, fund
from tests.conftest import KycTierSetter, UserFactory

FUNDED = 300_000
SYMBOL = "ETH/USD"

buy = st.tuples(
    st.just("buy"),
    st.sampled_from(["market", "limit"]),
    st.sampled_from(["0.01", "0.02", "0.005", "0.031"]),
    st.integers(min_value=-30, max_value=10),  # limit offset from the ask, dollars
)
sell = st.tuples(st.just("sell"), st.sampled_from(["market", "limit"]), st.integers(1, 100))
move = st.tuples(
    st.just("quote"),
    st.integers(min_value=-40, max_value=40),  # dollars from 2000
    st.sampled_from(["0.004", "0.01", "1000"]),  # size offered: small sizes fill partially
)
cancel = st.tuples(st.just("cancel"), st.integers(0, 20))
replace = st.tuples(st.just("replace"), st.integers(0, 20), st.integers(-30, 10))
deliver = st.tuples(st.just("deliver"), st.integers(0, 2**31))  # some events, shuffled
operation = st.one_of(buy, buy, sell, move, move, cancel, replace, deliver, deliver)


class World:
    def __init__(
        self, maker: async_sessionmaker[AsyncSession], broker: SandboxBroker, user: uuid.UUID
    ) -> None:
        self.maker, self.broker, self.user = maker, broker, user
        self.order_ids: list[uuid.UUID] = []
        self.ask = Decimal(2000)
        self.omnibus_before = 0

    async def call(self, fn: Any) -> Any:
        try:
            async with session_scope(self.maker) as s:
                return await fn(s)
        except AppError:
            return None

    async def place(self, data: OrderCreate) -> None:
        intake = await self.call(
            lambda s: orders.prepare(
                session=s,
                broker=self.broker,
                user_id=self.user,
                data=data,
                idempotency_key=None,
                buffer_bps=500,
            )
        )
        if intake is None:
            return
        self.order_ids.append(intake.order_id)
        await self.call(
            lambda s: orders.send(session=s, broker=self.broker, order_id=intake.order_id)
        )

    async def step(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "buy":
            _, type_, qty, offset = op
            await self.place(
                OrderCreate(
                    symbol=SYMBOL,
                    side="buy",
                    type=type_,
                    time_in_force="gtc",
                    qty=Decimal(qty),
                    limit_price=self.ask + offset if type_ == "limit" else None,
                    client_order_id=uuid.uuid4().hex,
                )
            )
        elif kind == "sell":
            _, type_, percent = op
            async with self.maker() as s:
                pos = await s.get(BrokeragePosition, (self.user, SYMBOL))
            have = pos.qty if pos else Decimal(0)
            qty = (have * percent / 100).quantize(Decimal("0.000000001"))
            if qty <= 0:
                return
            await self.place(
                OrderCreate(
                    symbol=SYMBOL,
                    side="sell",
                    type=type_,
                    time_in_force="gtc",
                    qty=qty,
                    limit_price=self.ask - 5 if type_ == "limit" else None,
                    client_order_id=uuid.uuid4().hex,
                )
            )
        elif kind == "quote":
            _, offset, size = op
            self.ask = Decimal(2000 + offset)
            await self.broker.set_quote(
                symbol=SYMBOL,
                bid=self.ask - 1,
                ask=self.ask,
                bid_size=Decimal(size),
                ask_size=Decimal(size),
            )
        elif kind == "cancel" and self.order_ids:
            oid = self.order_ids[op[1] % len(self.order_ids)]
            await self.call(
                lambda s: orders.cancel(
                    session=s, broker=self.broker, user_id=self.user, order_id=oid
                )
            )
        elif kind == "replace" and self.order_ids:
            oid = self.order_ids[op[1] % len(self.order_ids)]
            data = OrderReplace(limit_price=self.ask + op[2])
            intake = await self.call(
                lambda s: orders.prepare_replace(
                    session=s,
                    broker=self.broker,
                    user_id=self.user,
                    order_id=oid,
                    data=data,
                    idempotency_key=None,
                    buffer_bps=500,
                )
            )
            if intake is not None and not intake.replayed:
                self.order_ids.append(intake.order_id)
                await self.call(
                    lambda s: orders.send_replace(
                        session=s, broker=self.broker, old_id=oid, new_id=intake.order_id
                    )
                )
        elif kind == "deliver":
            await self.deliver(random.Random(op[1]))

    async def deliver(self, rng: random.Random | None) -> None:
        """Apply the broker's events: a shuffled, duplicated sample, or all in order."""
        page = await self.broker.events_page(
            since_id=None, since=wire.parse_ts("2000-01-01"), limit=10_000
        )
        chosen = page
        if rng is not None:
            chosen = [e for e in page if rng.random() < 0.6]
            chosen += rng.sample(chosen, min(len(chosen), 3))
            rng.shuffle(chosen)
        for payload in chosen:
            event = wire.parse_event(payload)
            await self.call(lambda s, e=event: events.apply_event(session=s, event=e))
        await accounts.execute_journals(maker=self.maker, broker=self.broker)

    async def check(self) -> None:
        async with self.maker() as s:
            tb = await ledger.trial_balance(session=s)
            assert tb.balanced, tb
            bal = await ledger.get_balance(session=s, user_id=self.user)
            assert bal.available >= 0
            cash = await ledger.account_balance(
                session=s, account=ledger.user_account(self.user, "cash")
            )
            rows = (
                await s.scalars(select(BrokerageOrder).where(BrokerageOrder.user_id == self.user))
            ).all()
            holds = sum(o.hold_cents for o in rows)
            assert bal.held == holds
            assert all(o.hold_cents == 0 for o in rows if o.settled)
            pos = await s.get(BrokeragePosition, (self.user, SYMBOL))
            cost = pos.cost_cents if pos else 0
            realized = pos.realized_cents if pos else 0
            assert cash + cost - realized == FUNDED
            buys = sum(o.filled_cents for o in rows if o.side == "buy")
            sells = sum(o.filled_cents for o in rows if o.side == "sell")
            omnibus = await ledger.account_balance(
                session=s, account=ledger.system_account(fills.OMNIBUS)
            )
            assert omnibus - self.omnibus_before == buys - sells
            qty = sum(o.filled_qty for o in rows if o.side == "buy") - sum(
                o.filled_qty for o in rows if o.side == "sell"
            )
            assert (pos.qty if pos else Decimal(0)) == qty >= 0
            customer = (
                await s.scalars(select(SandboxAccount).where(SandboxAccount.kind == "customer"))
            ).one()
            assert customer.cash >= 0  # the broker account never goes below zero

    async def converged(self) -> None:
        await self.deliver(None)
        await self.deliver(None)  # everything again: nothing changes
        report = await reconcile(maker=self.maker, broker=self.broker, grace_seconds=0)
        assert report.fills_healed == 0, report
        await self.check()
        async with self.maker() as s:
            account = await accounts.require_account(session=s, user_id=self.user)
            rows = (
                await s.scalars(select(BrokerageOrder).where(BrokerageOrder.user_id == self.user))
            ).all()
            for o in rows:
                if o.broker_order_id is None:
                    continue
                snap = await self.broker.get_order(
                    account_id=account.broker_account_id, order_id=o.broker_order_id
                )
                assert snap.filled_qty == o.filled_qty, (o.id, snap, o.status)
                assert snap.status == o.status or o.status == "rejected", (snap.status, o.status)
            theirs = {
                p.symbol: p.qty
                for p in await self.broker.list_positions(account_id=account.broker_account_id)
            }
            pos = await s.get(BrokeragePosition, (self.user, SYMBOL))
            assert theirs.get(SYMBOL, Decimal(0)) == (pos.qty if pos else Decimal(0))
            alerts = (await s.scalars(select(BrokerageAlert))).all()
            assert [a.kind for a in alerts] == [], [(a.kind, a.details) for a in alerts]
            # house conservation at the broker: firm + customer + spent - received == start
            await self.broker.firm_account_id()
            firm = (
                await s.scalars(select(SandboxAccount).where(SandboxAccount.kind == "firm"))
            ).one()
            customer = (
                await s.scalars(select(SandboxAccount).where(SandboxAccount.kind == "customer"))
            ).one()
            spent = sum(o.filled_cents for o in rows if o.side == "buy")
            got = sum(o.filled_cents for o in rows if o.side == "sell")
            assert cents_of(firm.cash + customer.cash) + spent - got == cents_of(FIRM_CASH)
            n = await s.scalar(select(func.count()).select_from(BrokerageOrder))
            assert n == len(rows)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(
    ops=[
        ("buy", "market", "0.031", 0),
        ("buy", "limit", "0.02", -10),
        ("deliver", 7),
        ("quote", -15, "0.004"),  # the limit buy fills 0.004 of 0.02
        ("deliver", 3),
        ("replace", 1, -12),
        ("quote", -25, "1000"),
        ("sell", "market", 50),
        ("buy", "limit", "0.01", -5),
        ("cancel", 4),
        ("sell", "limit", 100),
        ("quote", 10, "0.01"),
        ("deliver", 11),
    ]
)
@given(ops=st.lists(operation, min_size=1, max_size=14))
async def test_cash_holds_and_positions_conserve(
    ops: list[tuple[Any, ...]],
    user_factory: UserFactory,
    kyc_tier: KycTierSetter,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    async with sessionmaker() as s, s.begin():  # each example: a broker of its own
        for table in (
            "brokerage_sandbox_accounts",
            "brokerage_sandbox_orders",
            "brokerage_sandbox_positions",
            "brokerage_sandbox_events",
            "brokerage_sandbox_quotes",
            "brokerage_sandbox_journals",
            "brokerage_sandbox_state",
            "brokerage_events",
            "brokerage_alerts",
            "brokerage_executions",
            "brokerage_orders",
            "brokerage_positions",
            "brokerage_journals",
            "brokerage_accounts",
            "brokerage_cursors",
        ):
            await s.execute(text(f"DELETE FROM {table}"))
    user = await user_factory()
    await kyc_tier(user.id, "standard")
    await approve_kyc(sessionmaker, settings, user.id)
    await fund(sessionmaker, user.id, FUNDED)
    broker = SandboxBroker(sessionmaker, poll_seconds=0.01)
    await broker.set_quote(symbol=SYMBOL, bid=Decimal(1999), ask=Decimal(2000))
    async with session_scope(sessionmaker) as s:
        await accounts.open_account(
            session=s,
            broker=broker,
            cipher=FieldCipher(settings.field_encryption_keys),
            user_id=user.id,
            ip_address="127.0.0.1",
        )
    world = World(sessionmaker, broker, user.id)
    async with sessionmaker() as s:
        world.omnibus_before = await ledger.account_balance(
            session=s, account=ledger.system_account(fills.OMNIBUS)
        )
    for op in ops:
        await world.step(op)
        await world.check()
    await world.converged()
