"""Settlement on the real Temporal dev server: YES, NO, void, and a worker killed mid-way."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from pull.config import Settings
from pull.exchange import service
from pull.exchange.activities import (
    SettleBatchInput,
    SettleBatchResult,
    finalize_settlement,
)
from pull.exchange.activities import settle_batch as real_settle_batch
from pull.exchange.schemas import OrderCreate
from pull.exchange.workflows import SettlementWorkflow
from pull.kit.outbox import OutboxRelay, temporal_handlers
from pull.ledger import service as ledger
from pull.worker import build_worker
from tests.exchange.conftest import cash, check_invariants

Maker = async_sessionmaker[AsyncSession]


async def order(maker: Maker, user: Any, **kw: Any) -> Any:
    async with maker() as s, s.begin():
        return await service.create_order(session=s, user_id=user.id, data=OrderCreate(**kw))


async def build_book(maker: Maker, trader: Any, ticker: str, pairs: int) -> list[tuple[Any, int]]:
    """`pairs` users each buy YES (1..3 contracts) from one NO buyer; some YES move on."""
    no_side = await trader(cents=10_000_000)
    holders: list[tuple[Any, int]] = []
    for i in range(pairs):
        u = await trader(cents=10_000)
        n = 1 + i % 3
        await order(
            maker, u, ticker=ticker, side="yes", action="buy", count=n, yes_price=40 + i % 20
        )
        holders.append((u, n))
    total = sum(n for _, n in holders)
    await order(maker, no_side, ticker=ticker, side="no", action="buy", count=total, no_price=99)
    return [(no_side, -total), *holders]


async def resolve_and_start(
    maker: Maker, client: Client, task_queue: str, ticker: str, result: str, batch: int
) -> None:
    async with maker() as s, s.begin():
        # on the test's queue: a `pull worker` of another test may relay the event first
        await service.resolve_market(
            session=s,
            ticker=ticker,
            result=result,
            settlement_batch_size=batch,
            settlement_task_queue=task_queue,
        )
    relay = OutboxRelay(maker, temporal_handlers(client, task_queue))
    while await relay.relay_once():
        pass


async def expect_settled(
    maker: Maker,
    ticker: str,
    holders: list[tuple[Any, int]],
    cash_before: dict[Any, int],
    result: str,
) -> None:
    async with maker() as s:
        m = await service.get_market(session=s, ticker=ticker)
        assert m.status == "settled" and m.result == result and m.open_interest == 0
        assert await ledger.account_balance(session=s, account=service.escrow_account(ticker)) == 0
        for user, position in holders:
            won = 0
            if result == "yes":
                won = 100 * max(position, 0)
            elif result == "no":
                won = 100 * max(-position, 0)
            if result != "void":
                assert await cash(s, user.id) == cash_before[user.id] + won, (position, result)
            paid = await s.scalar(
                text(
                    "SELECT count(*) FROM ledger_entries e JOIN ledger_transfers t "
                    "ON t.id = e.transfer_id JOIN ledger_accounts a ON a.id = e.account_id "
                    "WHERE t.kind = 'exchange.settlement' AND a.owner_id = :u"
                ),
                {"u": user.id},
            )
            assert paid == (1 if won or result == "void" else 0), (user.id, paid)
            rows = (await service.list_settlements(session=s, user_id=user.id)).items
            assert len(rows) == 1 and rows[0].market_result == result
        await check_invariants(s, [ticker])


@pytest.mark.parametrize("result", ["yes", "no", "void"])
async def test_settlement(
    result: str,
    sessionmaker: Maker,
    market_factory: Any,
    trader: Any,
    temporal_client: Client,
    task_queue: str,
    settings: Settings,
    worker_runtime: object,
) -> None:
    ticker = await market_factory()
    holders = await build_book(sessionmaker, trader, ticker, 7)
    # a resting order is canceled (its hold released) at resolution
    late = await trader(cents=1_000)
    await order(sessionmaker, late, ticker=ticker, side="yes", action="buy", count=10, yes_price=5)
    async with sessionmaker() as s:
        before = {u.id: await cash(s, u.id) for u, _ in holders}
        costs = {
            p.ticker: p.cost_basis
            for u, _ in holders
            for p in (await service.list_positions(session=s, user_id=u.id)).items
        }
    assert costs
    await resolve_and_start(sessionmaker, temporal_client, task_queue, ticker, result, 3)
    async with build_worker(temporal_client, settings, task_queue=task_queue):
        out = await temporal_client.get_workflow_handle(f"settle-{ticker}").result()
    assert out["settled"] == len(holders) and out["status"] == "settled"
    await expect_settled(sessionmaker, ticker, holders, before, result)
    async with sessionmaker() as s:
        assert await cash(s, late.id) == 1_000
        if result == "void":
            for u, _ in holders:
                [st] = (await service.list_settlements(session=s, user_id=u.id)).items
                assert st.revenue == st.cost_basis > 0
                assert await cash(s, u.id) == before[u.id] + st.cost_basis


BLOCKED = asyncio.Event()
CALLS = {"n": 0}


@activity.defn(name="exchange.settle_batch")
async def settle_then_hang(inp: SettleBatchInput) -> SettleBatchResult:
    """The real batch; on the second call it commits and then hangs, as if the worker died
    between committing and reporting."""
    out = await real_settle_batch(inp)
    CALLS["n"] += 1
    if CALLS["n"] == 2:
        BLOCKED.set()
        await asyncio.Event().wait()
    return out


async def test_worker_killed_mid_settlement_pays_each_winner_once(
    sessionmaker: Maker,
    market_factory: Any,
    trader: Any,
    temporal_client: Client,
    task_queue: str,
    settings: Settings,
    worker_runtime: object,
) -> None:
    ticker = await market_factory()
    holders = await build_book(sessionmaker, trader, ticker, 12)
    async with sessionmaker() as s:
        before = {u.id: await cash(s, u.id) for u, _ in holders}
    await resolve_and_start(sessionmaker, temporal_client, task_queue, ticker, "yes", 4)
    doomed = Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[SettlementWorkflow],
        activities=[settle_then_hang, finalize_settlement],
    )
    async with doomed:
        await asyncio.wait_for(BLOCKED.wait(), 60)
        async with sessionmaker() as s:
            done = await s.scalar(
                text(
                    "SELECT count(*) FROM exchange_settlements s JOIN exchange_markets m "
                    "ON m.id = s.market_id WHERE m.ticker = :t"
                ),
                {"t": ticker},
            )
        # at least the hanging batch committed; the market is not settled yet
        assert 4 <= done < len(holders)
    # the first worker is gone mid-activity; a fresh one on the same queue finishes the job
    async with build_worker(temporal_client, settings, task_queue=task_queue):
        out = await asyncio.wait_for(
            temporal_client.get_workflow_handle(f"settle-{ticker}").result(), 120
        )
    assert out["status"] == "settled"
    await expect_settled(sessionmaker, ticker, holders, before, "yes")
    runs = [wf async for wf in temporal_client.list_workflows(f"WorkflowId = 'settle-{ticker}'")]
    assert len(runs) == 1
