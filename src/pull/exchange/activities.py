"""Activities of the exchange's workflows, and the worker's exchange clock.

Each activity is one database transaction through the exchange service, so a retry after a
crash at any point either finds its work committed (and skips it) or redoes all of it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from pull.exchange import service
from pull.kit.db import session_scope
from pull.kit.runtime import worker_runtime

log = logging.getLogger("pull.exchange")


@dataclass(frozen=True)
class SettleBatchInput:
    ticker: str
    batch_size: int
    after_user_id: str | None = None
    # this lane's slice of the user id space (inclusive); None: all users
    range_lo: str | None = None
    range_hi: str | None = None


@dataclass(frozen=True)
class SettleBatchResult:
    settled: int
    paid: int
    done: bool
    last_user_id: str | None = None


@dataclass(frozen=True)
class FinalizeSettlementInput:
    ticker: str


@dataclass(frozen=True)
class FinalizeSettlementResult:
    ticker: str
    result: str | None
    status: str


@activity.defn(name="exchange.settle_batch")
async def settle_batch(inp: SettleBatchInput) -> SettleBatchResult:
    """Pay one batch of a resolved market's positions (committed before returning)."""
    activity.heartbeat()
    async with session_scope(worker_runtime().sessionmaker) as session:
        batch = await service.settle_batch(
            session=session,
            ticker=inp.ticker,
            batch_size=inp.batch_size,
            after=uuid.UUID(inp.after_user_id) if inp.after_user_id else None,
            user_range=(
                (uuid.UUID(inp.range_lo), uuid.UUID(inp.range_hi))
                if inp.range_lo and inp.range_hi
                else None
            ),
        )
    return SettleBatchResult(
        settled=batch.settled,
        paid=batch.paid,
        done=batch.done,
        last_user_id=str(batch.last_user_id) if batch.last_user_id else None,
    )


@activity.defn(name="exchange.finalize_settlement")
async def finalize_settlement(inp: FinalizeSettlementInput) -> FinalizeSettlementResult:
    async with session_scope(worker_runtime().sessionmaker) as session:
        market = await service.finalize_settlement(session=session, ticker=inp.ticker)
    return FinalizeSettlementResult(
        ticker=market.ticker, result=market.result, status=market.status
    )


async def clock_tick(maker: async_sessionmaker[AsyncSession]) -> tuple[int, int, int]:
    """Open markets whose open_time has come, close those past close_time, expire orders."""
    async with session_scope(maker) as session:
        opened = await service.open_due_markets(session=session)
    async with session_scope(maker) as session:
        closed = await service.close_due_markets(session=session)
    async with session_scope(maker) as session:
        expired = await service.expire_orders(session=session)
    return opened, closed, expired


async def run_clock(
    maker: async_sessionmaker[AsyncSession], stop: asyncio.Event, *, every: float
) -> None:
    """The worker's exchange clock: markets open and close on their own, orders expire."""
    while not stop.is_set():
        try:
            opened, closed, expired = await clock_tick(maker)
            if opened or closed or expired:
                log.info(
                    "exchange clock",
                    extra={"opened": opened, "closed": closed, "expired": expired},
                )
        except Exception:
            log.exception("exchange clock failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            pass
