"""Brokerage reads for the portfolio (re-exported by `service`): executions that build tax
lots, positions of many users, and the marks of symbols."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    previous_close: Decimal | None  # dollars per share
    previous_close_source: str | None = None  # broker | last_fill


async def executions(*, session: AsyncSession, user_id: uuid.UUID) -> list[ExecutionRow]:
    """The user's applied executions, oldest first (what each one moved), as corrected.

    An order that a `trade_bust` or `trade_correct` changed is one row: its corrected
    cumulative fill (the sum of its executions' applied qty and cents, corrections signed) at
    its first execution's time, or no row when busted in full. So a bust removes the shares
    from the lot they were bought in (or, for a sale, gives them back to the lots they were
    taken from) instead of looking like a new trade, and a price correction changes the lot's
    cost (or the sale's proceeds). Orders without corrections keep one row per execution."""
    rows = await repo.user_executions(session, user_id)
    corrected = {e.order_id for e in rows if e.source == "correction"}
    out: list[ExecutionRow] = []
    qty: dict[uuid.UUID, Decimal] = {}
    cents: dict[uuid.UUID, int] = {}
    first: dict[uuid.UUID, ExecutionRow] = {}
    for e in rows:
        row = ExecutionRow(
            e.symbol, None, e.side, e.applied_qty, e.applied_cents, e.created_at, e.id
        )
        if e.order_id not in corrected:
            out.append(row)
            continue
        qty[e.order_id] = qty.get(e.order_id, Decimal(0)) + e.applied_qty
        cents[e.order_id] = cents.get(e.order_id, 0) + e.applied_cents
        if e.source != "correction":
            first.setdefault(e.order_id, row)
    for order_id, row in first.items():
        if qty[order_id] > 0:  # nothing when busted in full
            out.append(replace(row, qty=qty[order_id], cents=max(0, cents[order_id])))
    out.sort(key=lambda r: r.seq)
    return out


async def lots_version(*, session: AsyncSession, user_id: uuid.UUID) -> tuple[int, ...]:
    """A version of `executions` for the user: it changes whenever they would (executions are
    insert-only; busts and corrections are rows of their own). Read it before them and a cache
    keyed by it is never stale."""
    return await repo.executions_version(session, user_id)


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
    the end-of-day batch), the last execution price on PULL. The previous close is the broker's
    (its snapshot's previous daily bar, one call for all the symbols); without one, the last
    execution price on PULL before `day_start`."""
    wanted = sorted(set(symbols))
    if not wanted:
        return {}
    quotes: dict[str, Decimal] = {}
    closes: dict[str, Decimal] = {}
    if broker is not None:
        for symbol in wanted:
            try:
                q = await broker.get_quote(symbol=symbol)
            except BrokerError:
                continue
            quotes[symbol] = (q.bid + q.ask) / 2
        try:
            snaps = await broker.get_snapshots(symbols=wanted)
        except BrokerError:
            snaps = {}
        closes = {s: v.previous_close for s, v in snaps.items() if v.previous_close is not None}
    last = await repo.last_prices(session, [s for s in wanted if s not in quotes])
    missing = [s for s in wanted if s not in closes]
    before = await repo.last_prices_before(session, missing, day_start) if missing else {}
    out = {}
    for s in wanted:
        if s in quotes:
            price, source = quotes[s], "quote_mid"
        elif s in last:
            price, source = last[s], "last_fill"
        else:
            price, source = None, "none"
        if s in closes:
            out[s] = StockMark(s, price, source, closes[s], "broker")
        else:
            close = before.get(s)
            out[s] = StockMark(s, price, source, close, None if close is None else "last_fill")
    return out
