"""The portfolio's public API (keyword-only; never commits): one view of everything a
customer owns, valued at current marks, with FIFO cost, P&L and day change."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from pull.brokerage import service as brokerage
from pull.config import Settings
from pull.ledger import service as ledger
from pull.portfolio import history as hist
from pull.portfolio import repository as repo
from pull.portfolio import snapshots, sources
from pull.portfolio.errors import (
    InvalidPeriod,
    InvalidTimeframe,
    StatementNotFound,
    TimeframeNotAllowed,
)
from pull.portfolio.lots import ZERO, ClosedLot, LotBook, day_change, replay
from pull.portfolio.schemas import HistoryRead, PortfolioRead, StatementRead
from pull.rewards import service as rewards


def day_start_of(now: dt.datetime) -> dt.datetime:
    """The start of `now`'s day in UTC: the boundary of day change and of a daily snapshot."""
    return dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), tzinfo=dt.UTC)


def _cents(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


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


def _holding(v: Valued, day: dt.datetime) -> dict[str, Any]:
    """One instrument's view as the plain data of a `HoldingRead` (written straight to JSON by
    `to_json`; 1,000 pydantic models cost more than the rest of the view). Quantity and cost
    are summed in the one pass over the open lots (as `LotBook.quantity` / `.cost` and
    `average_cost` compute them)."""
    mark = v.mark
    lots = []
    value = 0
    quantity = ZERO
    cost = 0
    for lot in v.book.open:
        mv = _cents(lot.quantity * mark)
        value += mv
        quantity += lot.quantity
        cost += lot.cost
        lots.append(
            {
                "acquired_at": lot.acquired,
                "quantity": lot.quantity,
                "cost": lot.cost,
                "market_value": mv,
                "unrealized_pnl": mv - lot.cost,
            }
        )
    return {
        "kind": v.inst.kind,
        "symbol": v.inst.symbol,
        "name": v.inst.name,
        "quantity": quantity,
        "mark": mark.quantize(_FOUR),
        "mark_source": v.mark_source,
        "market_value": value,
        "cost_basis": cost,
        "average_cost": (Decimal(cost) / quantity).quantize(_FOUR) if quantity else None,
        "unrealized_pnl": value - cost,
        "realized_pnl": v.book.realized,
        "day_change": (
            day_change(v.book, mark=mark, previous_close=v.inst.previous_close, day_start=day)
            if v.mark_source != "cost"
            else 0
        ),
        "lots": lots,
    }


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
    day = day_start_of(now)
    balances = (await ledger.user_balances(session=session, user_ids=[user_id]))[user_id]
    valued = await gather(session=session, user_id=user_id, now=now, broker=broker)
    holdings = [_holding(v, day) for v in valued if v.book.open]
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
        holdings.append(_points(balances.points_posted, points_value, points_cash, settings))
    realized = sum(v.book.realized for v in valued) + points_cash
    holdings_value = sum(h["market_value"] for h in holdings)
    cost = sum(h["cost_basis"] for h in holdings)
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
        "holdings": holdings,
        "totals": {
            "value": value,
            "holdings_value": holdings_value,
            "cost_basis": cost,
            "unrealized_pnl": unrealized,
            "realized_pnl": realized,
            "day_change": sum(h["day_change"] or 0 for h in holdings),
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
