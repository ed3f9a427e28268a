"""Valuation points for many customers at once: the end-of-day schedule's batches and the
live point of a history.

Set-based: one batch of users costs a fixed number of queries whatever its size (balances,
positions and marks of each module, net deposits, one INSERT ... SELECT FROM unnest ...
ON CONFLICT DO NOTHING). Values use the same marks as `GET /api/v1/portfolio`; a position is
valued at the module's own quantity (at cost where no mark exists)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from pull.brokerage import service as brokerage
from pull.config import Settings
from pull.exchange import holdings as exchange
from pull.ledger import service as ledger
from pull.portfolio import repository as repo
from pull.rewards import service as rewards
from pull.rwa import service as rwa

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Point:
    user_id: uuid.UUID
    equity: int
    cash: int
    holdings: int
    points: int
    net_deposits: int

    def row(self) -> tuple[uuid.UUID, int, int, int, int, int]:
        return (self.user_id, self.equity, self.cash, self.holdings, self.points, self.net_deposits)


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


async def value_users(
    *,
    session: AsyncSession,
    user_ids: Sequence[uuid.UUID],
    at: dt.datetime,
    settings: Settings,
    broker: brokerage.Broker | None,
) -> list[Point]:
    """Each user's value now (marks as of the day of `at`), and their net deposits."""
    ids = list(user_ids)
    day = dt.datetime.combine(at.astimezone(dt.UTC).date(), dt.time(), tzinfo=dt.UTC)
    balances = await ledger.user_balances(session=session, user_ids=ids)
    held: dict[uuid.UUID, int] = dict.fromkeys(ids, 0)

    positions = await exchange.open_positions(session=session, user_ids=ids)
    marks = await exchange.marks(
        session=session, tickers=[p.ticker for p in positions], day_start=day
    )
    for p in positions:
        m = marks.get(p.ticker)
        yes = m.yes_mark()[0] if m else None
        if yes is None:
            held[p.user_id] += p.cost_basis
        else:
            held[p.user_id] += p.position * yes if p.position > 0 else -p.position * (100 - yes)

    reserved = await rwa.reserved_by_sells(session=session, user_ids=ids)
    shares: dict[uuid.UUID, dict[str, int]] = {}
    for u in ids:
        mine = dict(balances[u].shares)
        for currency, n in reserved.get(u, {}).items():
            mine[currency] = mine.get(currency, 0) + n
        shares[u] = mine
    share_marks = await rwa.share_marks(
        session=session,
        currencies=sorted({c for mine in shares.values() for c in mine}),
        day_start=day,
    )
    for u, mine in shares.items():
        for currency, n in mine.items():
            sm = share_marks.get(currency)
            price = sm.price()[0] if sm else None
            held[u] += n * (price or 0)

    stocks = await brokerage.open_positions(session=session, user_ids=ids)
    stock_marks = await brokerage.marks(
        session=session, broker=broker, symbols=[s.symbol for s in stocks], day_start=day
    )
    for s in stocks:
        quote = stock_marks[s.symbol].price
        held[s.user_id] += s.cost_cents if quote is None else _floor(s.qty * quote * 100)

    # balances are read now, so net deposits are counted up to now too (a run that reaches a
    # customer a little after `at` stamps a consistent pair with `at`)
    now = max(at, dt.datetime.now(dt.UTC))
    deposits = await ledger.external_flow_totals(
        session=session, user_ids=ids, start=EPOCH, end=now + dt.timedelta(seconds=1)
    )
    out = []
    for u in ids:
        b = balances[u]
        pts = rewards.points_cash_value(points=b.points_posted, settings=settings)
        out.append(
            Point(
                user_id=u,
                equity=b.cash_total + held[u] + pts,
                cash=b.cash_total,
                holdings=held[u],
                points=pts,
                net_deposits=deposits.get(u, 0),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class BatchResult:
    written: int
    users: int
    last_user: uuid.UUID | None  # None: no user after the cursor, the run is complete


async def snapshot_batch(
    *,
    session: AsyncSession,
    kind: str,
    at: dt.datetime,
    after: uuid.UUID | None,
    limit: int,
    settings: Settings,
    broker: brokerage.Broker | None,
) -> BatchResult:
    """Write the `kind` point at `at` for the next `limit` customers after `after`. Idempotent
    per (user, kind, at): a batch that is retried, or a run that resumes, writes nothing twice."""
    users = await ledger.account_owners_after(session=session, after=after, limit=limit)
    if not users:
        return BatchResult(0, 0, None)
    points = await value_users(
        session=session, user_ids=users, at=at, settings=settings, broker=broker
    )
    written = await repo.insert_points(session, kind, at, [p.row() for p in points])
    return BatchResult(written, len(users), users[-1])
