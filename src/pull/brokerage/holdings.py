"""Brokerage reads for the portfolio (re-exported by `service`): executions that build tax
lots, positions of many users, and the marks of symbols."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from pull.brokerage import repository as repo
from pull.brokerage.providers.base import Broker, BrokerError


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    symbol: str
    asset_class: str | None
    side: str  # buy | sell
    qty: Decimal
    cents: int
    at: dt.datetime
    seq: int


@dataclass(frozen=True, slots=True)
class StockPosition:
    user_id: uuid.UUID
    symbol: str
    asset_class: str
    qty: Decimal
    cost_cents: int
    realized_cents: int


@dataclass(frozen=True, slots=True)
class StockMark:
    symbol: str
    price: Decimal | None  # dollars per share
    source: str  # quote_mid | last_fill | none
    previous_close: Decimal | None


async def executions(*, session: AsyncSession, user_id: uuid.UUID) -> list[ExecutionRow]:
    """The user's applied executions, oldest first (what each one moved)."""
    return [
        ExecutionRow(e.symbol, None, e.side, e.applied_qty, e.applied_cents, e.created_at, e.id)
        for e in await repo.user_executions(session, user_id)
    ]


async def open_positions(
    *, session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> list[StockPosition]:
    if not user_ids:
        return []
    return [
        StockPosition(p.user_id, p.symbol, p.asset_class, p.qty, p.cost_cents, p.realized_cents)
        for p in await repo.positions_of(session, user_ids)
    ]


async def marks(
    *,
    session: AsyncSession,
    broker: Broker | None,
    symbols: Sequence[str],
    day_start: dt.datetime,
) -> dict[str, StockMark]:
    """The broker's quote midpoint; when the broker cannot quote (or none is given, as in
    the end-of-day batch), the last execution price on PULL. The previous close is the last
    execution price on PULL before `day_start` (the broker API we use has no daily bars)."""
    wanted = sorted(set(symbols))
    if not wanted:
        return {}
    quotes: dict[str, Decimal] = {}
    if broker is not None:
        for symbol in wanted:
            try:
                q = await broker.get_quote(symbol=symbol)
            except BrokerError:
                continue
            quotes[symbol] = (q.bid + q.ask) / 2
    last = await repo.last_prices(session, [s for s in wanted if s not in quotes])
    before = await repo.last_prices_before(session, wanted, day_start)
    out = {}
    for s in wanted:
        if s in quotes:
            price, source = quotes[s], "quote_mid"
        elif s in last:
            price, source = last[s], "last_fill"
        else:
            price, source = None, "none"
        out[s] = StockMark(s, price, source, before.get(s))
    return out
