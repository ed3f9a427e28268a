"""The exchange's SQL for market structure, orders, portfolio and market data reads, and
settlement. The book commands' hot path is in `book_repository`."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange.models import (
    Candle,
    Event,
    Fill,
    Market,
    Order,
    Position,
    Series,
    Settlement,
    Trade,
)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


# --- market structure ---------------------------------------------------------------------------


async def series_by_ticker(session: AsyncSession, ticker: str) -> Series | None:
    return (await session.scalars(select(Series).where(Series.ticker == ticker))).first()


async def event_by_ticker(session: AsyncSession, ticker: str) -> Event | None:
    return (await session.scalars(select(Event).where(Event.ticker == ticker))).first()


async def market_by_ticker(
    session: AsyncSession, ticker: str, *, lock: bool = False
) -> Market | None:
    stmt = select(Market).where(Market.ticker == ticker)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def ticker_taken(session: AsyncSession, ticker: str) -> bool:
    stmt = text(
        "SELECT EXISTS (SELECT 1 FROM exchange_series WHERE ticker = :t) "
        "OR EXISTS (SELECT 1 FROM exchange_events WHERE ticker = :t) "
        "OR EXISTS (SELECT 1 FROM exchange_markets WHERE ticker = :t)"
    )
    return bool(await session.scalar(stmt, {"t": ticker}))


async def list_events(
    session: AsyncSession,
    *,
    series_ticker: str | None,
    after: str | None,
    limit: int,
) -> Sequence[Event]:
    stmt = select(Event).order_by(Event.ticker).limit(limit)
    if series_ticker:
        stmt = stmt.where(Event.series_ticker == series_ticker)
    if after:
        stmt = stmt.where(Event.ticker > after)
    return (await session.scalars(stmt)).all()


async def events_by_tickers(session: AsyncSession, tickers: Sequence[str]) -> Sequence[Event]:
    if not tickers:
        return []
    return (await session.scalars(select(Event).where(Event.ticker.in_(list(tickers))))).all()


async def markets_of_events(
    session: AsyncSession, event_tickers: Sequence[str]
) -> Sequence[Market]:
    """Every market of these events, by ticker (one statement for a whole page of events)."""
    if not event_tickers:
        return []
    stmt = (
        select(Market).where(Market.event_ticker.in_(list(event_tickers))).order_by(Market.ticker)
    )
    return (await session.scalars(stmt)).all()


async def list_series(session: AsyncSession, *, limit: int = 200) -> Sequence[Series]:
    return (await session.scalars(select(Series).order_by(Series.ticker).limit(limit))).all()


async def list_markets(
    session: AsyncSession,
    *,
    status: str | None,
    category: str | None,
    event_ticker: str | None,
    series_ticker: str | None,
    search: str | None,
    tickers: Sequence[str] | None,
    after: str | None,
    limit: int,
) -> Sequence[Market]:
    stmt = select(Market).order_by(Market.ticker).limit(limit)
    if status:
        stmt = stmt.where(Market.status == status)
    if category:
        stmt = stmt.where(Market.category == category)
    if event_ticker:
        stmt = stmt.where(Market.event_ticker == event_ticker)
    if series_ticker:
        stmt = stmt.join(Event, Event.id == Market.event_id).where(
            Event.series_ticker == series_ticker
        )
    if tickers:
        stmt = stmt.where(Market.ticker.in_(list(tickers)))
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                Market.title.ilike(pattern),
                Market.subtitle.ilike(pattern),
                Market.ticker.ilike(pattern),
            )
        )
    if after:
        stmt = stmt.where(Market.ticker > after)
    return (await session.scalars(stmt)).all()


async def markets_due(
    session: AsyncSession, *, status: str, column: str, now: dt.datetime, limit: int = 500
) -> list[str]:
    col = Market.open_time if column == "open_time" else Market.close_time
    rows = await session.scalars(
        select(Market.ticker).where(Market.status == status, col <= now).limit(limit)
    )
    return list(rows.all())


async def volume_24h(session: AsyncSession, market_ids: Sequence[uuid.UUID]) -> dict[Any, int]:
    if not market_ids:
        return {}
    rows = await session.execute(
        text(
            "SELECT market_id, coalesce(sum(count), 0) FROM exchange_trades "
            "WHERE market_id = ANY(:ids) AND created_at > now() - interval '24 hours' "
            "GROUP BY market_id"
        ),
        {"ids": list(market_ids)},
    )
    return {r[0]: int(r[1]) for r in rows}


async def liquidity(session: AsyncSession, market_ids: Sequence[uuid.UUID]) -> dict[Any, int]:
    if not market_ids:
        return {}
    rows = await session.execute(
        text(
            "SELECT market_id, coalesce(sum(remaining_count * "
            "CASE WHEN is_bid THEN yes_price ELSE 100 - yes_price END), 0) "
            "FROM exchange_orders WHERE market_id = ANY(:ids) AND status = 'resting' "
            "GROUP BY market_id"
        ),
        {"ids": list(market_ids)},
    )
    return {r[0]: int(r[1]) for r in rows}


# --- orders -------------------------------------------------------------------------------------


async def order_by_id(
    session: AsyncSession, order_id: uuid.UUID, *, user_id: uuid.UUID | None = None
) -> Order | None:
    stmt = select(Order).where(Order.id == order_id)
    if user_id is not None:
        stmt = stmt.where(Order.user_id == user_id)
    return (await session.scalars(stmt)).first()


async def refresh_order(session: AsyncSession, order: Order) -> Order:
    await session.refresh(order)
    return order


async def cancel_resting(
    session: AsyncSession, order_id: uuid.UUID, *, reason: str, now: dt.datetime
) -> Order | None:
    """Cancel a resting order; None when it is no longer resting."""
    stmt = (
        update(Order)
        .where(Order.id == order_id, Order.status == "resting")
        .values(
            status="canceled",
            remaining_count=0,
            hold_remaining=0,
            cancel_reason=reason,
            updated_at=now,
        )
        .returning(Order)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(stmt)).first()


async def shrink_order(
    session: AsyncSession, order_id: uuid.UUID, *, remaining: int, hold: int, now: dt.datetime
) -> None:
    await session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(remaining_count=remaining, hold_remaining=hold, updated_at=now)
        .execution_options(synchronize_session=False)
    )


async def list_orders(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    ticker: str | None,
    status: str | None,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Order]:
    stmt = (
        select(Order)
        .where(Order.user_id == user_id)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(limit)
    )
    if ticker:
        stmt = stmt.where(Order.ticker == ticker)
    if status:
        stmt = stmt.where(Order.status == status)
    if before:
        stmt = stmt.where(
            or_(
                Order.created_at < before[0],
                and_(Order.created_at == before[0], Order.id < before[1]),
            )
        )
    return (await session.scalars(stmt)).all()


async def resting_orders(
    session: AsyncSession, market_id: uuid.UUID, *, limit: int | None = None
) -> Sequence[Order]:
    stmt = (
        select(Order)
        .where(Order.market_id == market_id, Order.status == "resting")
        .order_by(Order.seq)
    )
    if limit:
        stmt = stmt.limit(limit)
    return (await session.scalars(stmt)).all()


async def expired_orders(session: AsyncSession, now: dt.datetime, limit: int) -> list[Any]:
    rows = await session.execute(
        select(Order.id, Order.ticker)
        .where(Order.status == "resting", Order.expiration_ts <= now)
        .limit(limit)
    )
    return list(rows.all())


async def queue_position(session: AsyncSession, order: Order) -> int:
    """Contracts resting ahead of the order at its price."""
    value = await session.scalar(
        select(func.coalesce(func.sum(Order.remaining_count), 0)).where(
            Order.market_id == order.market_id,
            Order.status == "resting",
            Order.is_bid == order.is_bid,
            Order.yes_price == order.yes_price,
            Order.seq < order.seq,
        )
    )
    return int(value or 0)


# --- portfolio ----------------------------------------------------------------------------------


async def list_fills(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    ticker: str | None,
    order_id: uuid.UUID | None,
    before: int | None,
    limit: int,
) -> Sequence[Fill]:
    stmt = select(Fill).where(Fill.user_id == user_id).order_by(Fill.id.desc()).limit(limit)
    if ticker:
        stmt = stmt.where(Fill.ticker == ticker)
    if order_id:
        stmt = stmt.where(Fill.order_id == order_id)
    if before:
        stmt = stmt.where(Fill.id < before)
    return (await session.scalars(stmt)).all()


async def list_positions(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    ticker: str | None,
    after: str | None,
    limit: int,
) -> Sequence[Position]:
    stmt = (
        select(Position).where(Position.user_id == user_id).order_by(Position.ticker).limit(limit)
    )
    if ticker:
        stmt = stmt.where(Position.ticker == ticker)
    if after:
        stmt = stmt.where(Position.ticker > after)
    return (await session.scalars(stmt)).all()


async def resting_summary(
    session: AsyncSession, user_id: uuid.UUID, market_ids: Sequence[uuid.UUID]
) -> dict[Any, tuple[int, int]]:
    if not market_ids:
        return {}
    rows = await session.execute(
        text(
            "SELECT market_id, count(*), coalesce(sum(hold_remaining), 0) FROM exchange_orders "
            "WHERE user_id = :u AND market_id = ANY(:m) AND status = 'resting' "
            "GROUP BY market_id"
        ),
        {"u": user_id, "m": list(market_ids)},
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


async def list_settlements(
    session: AsyncSession, *, user_id: uuid.UUID, before: int | None, limit: int
) -> Sequence[Settlement]:
    stmt = (
        select(Settlement)
        .where(Settlement.user_id == user_id)
        .order_by(Settlement.id.desc())
        .limit(limit)
    )
    if before:
        stmt = stmt.where(Settlement.id < before)
    return (await session.scalars(stmt)).all()


# --- market data --------------------------------------------------------------------------------


async def book_levels(
    session: AsyncSession, market_id: uuid.UUID, depth: int | None
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(YES bids, NO bids) as [price, count] best first."""
    rows = await session.execute(
        text(
            "SELECT is_bid, yes_price, sum(remaining_count) FROM exchange_orders "
            "WHERE market_id = :m AND status = 'resting' GROUP BY is_bid, yes_price"
        ),
        {"m": market_id},
    )
    yes: list[tuple[int, int]] = []
    no: list[tuple[int, int]] = []
    for is_bid, price, count in rows:
        if is_bid:
            yes.append((int(price), int(count)))
        else:
            no.append((100 - int(price), int(count)))
    yes.sort(key=lambda level: -level[0])
    no.sort(key=lambda level: -level[0])
    if depth:
        yes, no = yes[:depth], no[:depth]
    return yes, no


async def list_trades(
    session: AsyncSession,
    *,
    ticker: str | None,
    before: int | None,
    min_ts: dt.datetime | None,
    max_ts: dt.datetime | None,
    limit: int,
) -> Sequence[Trade]:
    stmt = select(Trade).order_by(Trade.id.desc()).limit(limit)
    if ticker:
        stmt = stmt.where(Trade.ticker == ticker)
    if before:
        stmt = stmt.where(Trade.id < before)
    if min_ts:
        stmt = stmt.where(Trade.created_at >= min_ts)
    if max_ts:
        stmt = stmt.where(Trade.created_at <= max_ts)
    return (await session.scalars(stmt)).all()


async def candles(
    session: AsyncSession, market_id: uuid.UUID, start: dt.datetime, end: dt.datetime
) -> Sequence[Candle]:
    stmt = (
        select(Candle)
        .where(Candle.market_id == market_id, Candle.start_ts >= start, Candle.start_ts < end)
        .order_by(Candle.start_ts)
    )
    return (await session.scalars(stmt)).all()


# --- settlement ---------------------------------------------------------------------------------


MAX_UUID = uuid.UUID(int=(1 << 128) - 1)


async def unsettled_positions(
    session: AsyncSession,
    market_id: uuid.UUID,
    limit: int,
    after: uuid.UUID | None = None,
    user_range: tuple[uuid.UUID, uuid.UUID] | None = None,
) -> list[tuple[Any, ...]]:
    """Positions not yet settled (settling zeroes them), in user order after `after` and within
    `user_range` (inclusive), locked. `after` only saves work: settled positions are skipped
    whatever it is."""
    lo, hi = user_range or (uuid.UUID(int=0), MAX_UUID)
    start = lo.int if after is None else max(lo.int, after.int + 1)
    if start > hi.int:
        return []
    rows = await session.execute(
        text(
            "SELECT p.user_id, p.position, p.cost_basis FROM exchange_positions p "
            "WHERE p.market_id = :m AND p.user_id >= :start AND p.user_id <= :hi "
            "AND (p.position <> 0 OR p.cost_basis <> 0) "
            "ORDER BY p.user_id LIMIT :n FOR UPDATE OF p"
        ),
        {"m": market_id, "n": limit, "start": uuid.UUID(int=start), "hi": hi},
    )
    return [tuple(r) for r in rows.all()]


async def void_cost_prefix(
    session: AsyncSession, market_id: uuid.UUID, first_user: uuid.UUID
) -> tuple[int, int]:
    """(cost basis of the market's positions of users before `first_user`, total cost basis),
    settled or not (a settlement record keeps the cost it settled): one statement, so one
    snapshot whatever other settlement lanes commit meanwhile."""
    row = (
        await session.execute(
            text(
                "WITH c AS ("
                " SELECT user_id, cost_basis FROM exchange_positions WHERE market_id = :m"
                " UNION ALL"
                " SELECT user_id, cost_basis FROM exchange_settlements WHERE market_id = :m) "
                "SELECT COALESCE(sum(cost_basis) FILTER (WHERE user_id < :u), 0), "
                "COALESCE(sum(cost_basis), 0) FROM c"
            ),
            {"m": market_id, "u": first_user},
        )
    ).one()
    return int(row[0]), int(row[1])


_SETTLE = text(
    """
WITH s AS (
    SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS s(
        user_id uuid, yes_count bigint, no_count bigint, cost_basis bigint, revenue bigint)
),
ins AS (
    INSERT INTO exchange_settlements (market_id, user_id, ticker, result, yes_count, no_count,
                                      cost_basis, revenue, settled_at)
    SELECT :m, s.user_id, :ticker, :result, s.yes_count, s.no_count, s.cost_basis, s.revenue,
           now()
    FROM s
    RETURNING user_id
)
UPDATE exchange_positions p SET
    realized_pnl = p.realized_pnl + s.revenue - s.cost_basis,
    position = 0, cost_basis = 0, sell_reserved = 0, updated_at = now()
FROM s WHERE p.market_id = :m AND p.user_id = s.user_id
"""
)


async def write_settlements(
    session: AsyncSession,
    *,
    market_id: uuid.UUID,
    ticker: str,
    result: str,
    rows: list[dict[str, Any]],
) -> None:
    await session.execute(
        _SETTLE, {"rows": _json(rows), "m": market_id, "ticker": ticker, "result": result}
    )


async def settlement_count(session: AsyncSession, market_id: uuid.UUID) -> int:
    value = await session.scalar(
        select(func.count()).select_from(Settlement).where(Settlement.market_id == market_id)
    )
    return int(value or 0)
