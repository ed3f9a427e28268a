"""A void is zero-sum against the market's own escrow (docs/exchange.md, "Void"): the 100¢ of
every open pair goes back to the holders, pro rata to their cost basis; no house account moves,
fees are kept."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.exchange import service
from pull.exchange.schemas import OrderCreate
from pull.kit.errors import AppError
from pull.ledger import service as ledger
from tests.exchange.conftest import check_invariants, create_market, fund

Maker = async_sessionmaker[AsyncSession]
USERS = 4


async def _order(maker: Maker, user_id: uuid.UUID, **kw: Any) -> None:
    try:
        async with maker() as s, s.begin():
            await service.create_order(session=s, user_id=user_id, data=OrderCreate(**kw))
    except AppError:
        pass


async def _system_balances(s: AsyncSession) -> dict[str, int]:
    rows = await s.execute(
        text("SELECT kind, sum(balance) FROM ledger_accounts WHERE owner_id IS NULL GROUP BY kind")
    )
    return {str(k): int(v) for k, v in rows.all()}


async def _user_money(s: AsyncSession, users: list[uuid.UUID]) -> int:
    total = 0
    for u in users:
        b = await ledger.get_balance(session=s, user_id=u)
        total += b.total
    return total


async def _void(maker: Maker, ticker: str, batch: int, lanes: int) -> None:
    """Resolve void and settle it through the service, in `lanes` slices of the user id space
    and batches of `batch` positions, as SettlementWorkflow does."""
    async with maker() as s, s.begin():
        await service.resolve_market(session=s, ticker=ticker, result="void")
    step = (1 << 128) // lanes
    for lane in reversed(range(lanes)):  # the last slice first: no lane relies on order
        lo = uuid.UUID(int=lane * step)
        hi = uuid.UUID(int=(1 << 128) - 1 if lane == lanes - 1 else (lane + 1) * step - 1)
        after = None
        while True:
            async with maker() as s, s.begin():
                out = await service.settle_batch(
                    session=s, ticker=ticker, batch_size=batch, after=after, user_range=(lo, hi)
                )
            if out.done:
                break
            after = out.last_user_id
    async with maker() as s, s.begin():
        await service.finalize_settlement(session=s, ticker=ticker)


async def test_void_after_a_resale_pays_nothing_out_of_house_money(
    sessionmaker: Maker, trader: Any, market_factory: Any
) -> None:
    """The review's case: A buys YES at 1¢ from B, sells it to C at 99¢, the market is voided."""
    ticker = await market_factory(taker_fee_bps=0)
    a, b, c = [await trader(cents=100_000) for _ in range(3)]
    await _order(sessionmaker, b.id, ticker=ticker, side="no", action="buy", count=100, no_price=99)
    await _order(
        sessionmaker, a.id, ticker=ticker, side="yes", action="buy", count=100, yes_price=1
    )
    await _order(
        sessionmaker, c.id, ticker=ticker, side="yes", action="buy", count=100, yes_price=99
    )
    await _order(
        sessionmaker, a.id, ticker=ticker, side="yes", action="sell", count=100, yes_price=99
    )
    async with sessionmaker() as s:
        house = await _system_balances(s)
        users = await _user_money(s, [a.id, b.id, c.id])
    await _void(sessionmaker, ticker, 1000, 1)
    async with sessionmaker() as s:
        after = await _system_balances(s)
        assert await ledger.account_balance(session=s, account=service.escrow_account(ticker)) == 0
        assert {k: v for k, v in after.items() if k != f"market_escrow:{ticker.lower()}"} == {
            k: v for k, v in house.items() if k != f"market_escrow:{ticker.lower()}"
        }
        # The 100 pairs' $100 went to the holders: B (NO, cost $99) and C (YES, cost $99).
        assert await _user_money(s, [a.id, b.id, c.id]) == users + 100 * 100
        revenue = {
            u.id: sum(
                r.revenue for r in (await service.list_settlements(session=s, user_id=u.id)).items
            )
            for u in (b, c)
        }
        assert revenue == {b.id: 5_000, c.id: 5_000}


ops = st.lists(
    st.tuples(
        st.integers(0, USERS - 1),
        st.sampled_from(["yes", "no"]),
        st.sampled_from(["buy", "buy", "sell"]),
        st.integers(1, 12),
        st.integers(1, 99),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(
    flow=[
        (1, "no", "buy", 10, 99),
        (0, "yes", "buy", 10, 1),
        (2, "yes", "buy", 10, 99),
        (0, "yes", "sell", 10, 99),
    ],
    batch=1,
    lanes=2,
    fee=700,
)
@given(
    flow=ops,
    batch=st.integers(1, 4),
    lanes=st.integers(1, 3),
    fee=st.sampled_from([0, 700]),
)
async def test_any_trades_then_void_is_zero_sum(
    flow: list[tuple[int, str, str, int, int]],
    batch: int,
    lanes: int,
    fee: int,
    sessionmaker: Maker,
    user_factory: Any,
    kyc_tier: Any,
) -> None:
    ticker = await create_market(sessionmaker, taker_fee_bps=fee, maker_fee_bps=fee // 7)
    users = []
    for _ in range(USERS):
        u = await user_factory()
        await kyc_tier(u.id, "standard")
        await fund(sessionmaker, u.id, 50_000)
        users.append(u.id)
    for who, side, action, count, price in flow:
        price_field = "yes_price" if side == "yes" else "no_price"
        await _order(
            sessionmaker,
            users[who],
            ticker=ticker,
            side=side,
            action=action,
            count=count,
            **{price_field: price},
        )
    async with sessionmaker() as s:
        house = await _system_balances(s)
        escrow = await ledger.account_balance(session=s, account=service.escrow_account(ticker))
        money = await _user_money(s, users)
        market = await service.get_market(session=s, ticker=ticker)
        assert escrow == 100 * market.open_interest
    await _void(sessionmaker, ticker, batch, lanes)
    async with sessionmaker() as s:
        after = await _system_balances(s)
        escrow_kind = f"market_escrow:{ticker.lower()}"
        assert after.get(escrow_kind, 0) == 0
        # every house account unchanged (the market's fee account included: fees are kept)
        assert {k: v for k, v in after.items() if k != escrow_kind} == {
            k: v for k, v in house.items() if k != escrow_kind
        }
        # cash conserved: what left the escrow is what the users gained
        assert await _user_money(s, users) == money + escrow
        assert (await ledger.trial_balance(session=s)).balanced
        paid = 0
        for u in users:
            for r in (await service.list_settlements(session=s, user_id=u)).items:
                paid += r.revenue
        assert paid == escrow
        await check_invariants(s, [ticker])
