"""The portfolio's public API (keyword-only; never commits): one view of everything a
customer owns, valued at current marks, with FIFO cost, P&L and day change."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from pull.brokerage import service as brokerage
from pull.config import Settings
from pull.ledger import service as ledger
from pull.portfolio import history as hist
from pull.portfolio import lot_cache, snapshots, sources, valuation
from pull.portfolio import repository as repo
from pull.portfolio.errors import (
    InvalidPeriod,
    InvalidTimeframe,
    StatementNotFound,
    TimeframeNotAllowed,
)
from pull.portfolio.lots import ClosedLot, LotBook, replay
from pull.portfolio.schemas import HistoryRead, PortfolioRead, StatementRead
from pull.rewards import service as rewards


def day_start_of(now: dt.datetime) -> dt.datetime:
    """The start of `now`'s day in UTC: the boundary of day change and of a daily snapshot."""
    return dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), tzinfo=dt.UTC)


K = TypeVar("K")


@dataclass(slots=True)
class Valued:
    """An instrument with its replayed lots and mark (the view's and realized list's input)."""

    inst: sources.Instrument
    book: LotBook
    mark: Decimal
    mark_source: str


async def gather(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    now: dt.datetime,
    broker: brokerage.Broker | None,
) -> list[Valued]:
    """Every instrument the user ever held, with FIFO lots and its mark (at cost when the
    module has no price)."""
    day = day_start_of(now)
    found = [
        *await sources.predictions(session, user_id, day),
        *await sources.rwa_shares(session, user_id, day),
        *await sources.stocks(session, user_id, day, broker),
    ]
    out = []
    for inst in found:
        book = replay(inst.events)
        mark, source = inst.mark, inst.mark_source
        if mark is None:
            q = book.quantity
            mark = (Decimal(book.cost) / q) if q else Decimal(0)
            source = "cost"
        out.append(Valued(inst, book, mark, source))
    return out


_FOUR = Decimal("0.0001")


async def holdings(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    now: dt.datetime,
    broker: brokerage.Broker | None,
) -> tuple[list[dict[str, Any]], int]:
    """The open holdings as plain data (predictions, RWA shares, stocks and crypto, in that
    order) and the realized P&L of every lot the user ever closed: the lots from the
    per-user cache (`lot_cache`), the marks read now."""
    day = day_start_of(now)
    books = await lot_cache.user_lots(session=session, user_id=user_id)
    parts: list[tuple[dict[Any, sources.Instrument], Mapping[Any, lot_cache.Book]]] = [
        (
            await sources.prediction_marks(session, _open(books.predictions), day),
            books.predictions,
        ),
        (await sources.rwa_marks(session, _open(books.rwa), day), books.rwa),
        (
            await sources.stock_marks(session, user_id, _open(books.stocks), day, broker),
            books.stocks,
        ),
    ]
    out = [
        _valued(books.valued, (i, key), inst, part[key], day)
        for i, (found, part) in enumerate(parts)
        for key, inst in found.items()
    ]
    realized = sum(b.realized for _, part in parts for b in part.values())
    return out, realized


def _valued(
    memo: dict[Any, tuple[tuple[Any, ...], dict[str, Any]]],
    key: Any,
    inst: sources.Instrument,
    book: lot_cache.Book,
    day: dt.datetime,
) -> dict[str, Any]:
    """`valuation.holding`, a pure function of the instrument (mark, previous close, names),
    the book and the day: kept with the user's cached books and reused while all three are
    unchanged (the book is the cache entry's own; a new version brings new books and an empty
    memo). The data is shared by the responses that reuse it: it is only ever read."""
    sig = (inst.kind, inst.symbol, inst.name, inst.mark, inst.mark_source, inst.previous_close, day)
    hit = memo.get(key)
    if hit is not None and hit[0] == sig:
        return hit[1]
    value = valuation.holding(inst, book, day)
    memo[key] = (sig, value)
    return value


def _open(books: Mapping[K, lot_cache.Book]) -> list[K]:
    return [key for key, b in books.items() if b.lots]


# The ledger transfer that pays a points redemption into cash (rewards.redemption): the points'
# realized P&L (they were earned at no cost).
POINTS_TO_CASH = "rewards_cash_credit"


def _points(points: int, value: int, realized: int, settings: Settings) -> dict[str, Any]:
    """Reward points as a holding: earned at no cost, marked at the cash-redemption rate; cash
    redemptions are their realized P&L. No tax lots here (rewards keeps its own expiring lots;
    points are income, not capital assets, so they are not in /realized or Form 8949)."""
    return {
        "kind": "points",
        "symbol": "PTS",
        "name": "Reward points",
        "quantity": Decimal(points),
        "mark": (Decimal(100) / settings.rewards_cash_points_per_dollar).quantize(_FOUR),
        "mark_source": "redemption_rate",
        "market_value": value,
        "cost_basis": 0,
        "average_cost": Decimal(0),
        "unrealized_pnl": value,
        "realized_pnl": realized,
        "day_change": 0,
        "lots": [],
    }


async def view(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    settings: Settings,
    broker: brokerage.Broker | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """The portfolio as the plain data of a `PortfolioRead` (what `portfolio` validates and
    `portfolio_json` serializes directly: for 1,000 holdings, building the models costs more
    than everything else)."""
    balances = (await ledger.user_balances(session=session, user_ids=[user_id]))[user_id]
    held, realized = await holdings(session=session, user_id=user_id, now=now, broker=broker)
    flows = await ledger.external_flows(session=session, user_id=user_id)
    points_value = rewards.points_cash_value(points=balances.points_posted, settings=settings)
    points_cash = (
        await ledger.entry_sums(
            session=session,
            account_kind="cash",
            currency="USD",
            transfer_kinds=[POINTS_TO_CASH],
            owner_id=user_id,
        )
    ).get(user_id, 0)
    if balances.points_posted:
        held.append(_points(balances.points_posted, points_value, points_cash, settings))
    realized += points_cash
    holdings_value = sum(h["market_value"] for h in held)
    cost = sum(h["cost_basis"] for h in held)
    value = balances.cash_total + holdings_value
    net_deposits = sum(f.amount for f in flows)
    unrealized = holdings_value - cost
    total_pnl = value - net_deposits
    return {
        "as_of": now,
        "cash": {
            "available": balances.available,
            "held": balances.held,
            "pending": balances.pending,
            "total": balances.cash_total,
        },
        "points": {
            "points": balances.points_posted,
            "available": balances.points_available,
            "cash_value": points_value,
        },
        "holdings": held,
        "totals": {
            "value": value,
            "holdings_value": holdings_value,
            "cost_basis": cost,
            "unrealized_pnl": unrealized,
            "realized_pnl": realized,
            "day_change": sum(h["day_change"] or 0 for h in held),
            "net_deposits": net_deposits,
            "total_pnl": total_pnl,
            "other_pnl": total_pnl - realized - unrealized,
        },
    }


async def portfolio(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    settings: Settings,
    broker: brokerage.Broker | None,
    now: dt.datetime,
) -> PortfolioRead:
    data = await view(session=session, user_id=user_id, settings=settings, broker=broker, now=now)
    return PortfolioRead.model_validate(data)


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)  # as pydantic writes a Decimal
    raise TypeError(type(value).__name__)


def to_json(data: dict[str, Any]) -> bytes:
    """`view`'s data as JSON, byte for byte what `PortfolioRead(...).model_dump_json()` gives
    for it (tests/portfolio/test_portfolio_api.py compares them) at a fraction of the cost."""
    return orjson.dumps(data, default=_json_default, option=orjson.OPT_UTC_Z)


async def closed_lots(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    now: dt.datetime,
) -> list[tuple[sources.Instrument, ClosedLot]]:
    """Every closed lot of the user, by sale time (the realized list and Form 8949)."""
    valued = await gather(session=session, user_id=user_id, now=now, broker=None)
    out = [(v.inst, c) for v in valued for c in v.book.closed]
    out.sort(key=lambda ic: (ic[1].sold, ic[0].symbol, ic[1].acquired))
    return out


async def history_series(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    period: str,
    timeframe: str | None,
    settings: Settings,
    broker: brokerage.Broker | None,
    now: dt.datetime,
) -> tuple[str, hist.Series]:
    """The period's points (end-of-day, and intraday for intraday timeframes) and a live point
    now, bucketed by timeframe, in cents; the percentage is time-weighted (history.py)."""
    if period not in hist.PERIODS:
        raise InvalidPeriod(details={"period": period, "allowed": list(hist.PERIODS)})
    tf = timeframe or hist.DEFAULT_TIMEFRAME[period]
    if tf not in hist.TIMEFRAMES:
        raise InvalidTimeframe(details={"timeframe": tf, "allowed": list(hist.TIMEFRAMES)})
    if tf not in hist.ALLOWED[period]:
        raise TimeframeNotAllowed(
            details={"period": period, "timeframe": tf, "allowed": list(hist.ALLOWED[period])}
        )
    span = hist.PERIODS[period]
    start = None if span is None else now - span
    kinds = ["eod"] if tf == "1D" else ["eod", "intraday"]
    stored = await repo.points_between(session, user_id, kinds, start, now)
    live = (
        await snapshots.value_users(
            session=session, user_ids=[user_id], at=now, settings=settings, broker=broker
        )
    )[0]
    samples = [hist.Sample(at, e, d) for at, e, d in stored]
    samples.append(hist.Sample(now, live.equity, live.net_deposits))
    return tf, hist.series(hist.bucketed(samples, hist.TIMEFRAMES[tf]))


async def history(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    period: str,
    timeframe: str | None,
    settings: Settings,
    broker: brokerage.Broker | None,
    now: dt.datetime,
) -> HistoryRead:
    """Alpaca's portfolio-history shape (dollars) of `history_series`."""
    tf, s = await history_series(
        session=session,
        user_id=user_id,
        period=period,
        timeframe=timeframe,
        settings=settings,
        broker=broker,
        now=now,
    )
    return HistoryRead(
        timestamp=s.timestamp,
        equity=[c / 100 for c in s.equity],
        profit_loss=[c / 100 for c in s.profit_loss],
        profit_loss_pct=s.profit_loss_pct,
        base_value=s.base_value / 100,
        base_value_asof=(
            dt.datetime.fromtimestamp(s.timestamp[0], dt.UTC).date().isoformat()
            if s.timestamp
            else None
        ),
        timeframe=tf,
        cashflow={
            "CSD": [c / 100 for c in s.deposits],
            "CSW": [c / 100 for c in s.withdrawals],
        },
    )


async def statements(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[StatementRead]:
    """The user's statements, newest first (`limit` rows after the key `before`)."""
    rows = await repo.statements_page(session, user_id, before, limit)
    return [
        StatementRead(
            id=r.id,
            month=r.month,
            created_at=r.created_at,
            pdf_bytes=len(r.pdf),
            csv_bytes=len(r.csv),
        )
        for r in rows
    ]


async def statement_files(
    *, session: AsyncSession, user_id: uuid.UUID, statement_id: uuid.UUID
) -> tuple[bytes, bytes, str]:
    """(pdf, csv, month) of one of the user's statements; another user's is not found."""
    row = await repo.statement_of(session, user_id, statement_id)
    if row is None:
        raise StatementNotFound(details={"statement_id": str(statement_id)})
    return row.pdf, row.csv, row.month
