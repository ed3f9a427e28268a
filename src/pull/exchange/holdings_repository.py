"""Read-only SQL behind `pull.exchange.holdings` (the portfolio's view of the exchange)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def user_fills(session: AsyncSession, user_id: uuid.UUID) -> list[Any]:
    rows = await session.execute(
        text(
            "SELECT id, ticker, side, action, count, yes_price, fee, created_at "
            "FROM exchange_fills WHERE user_id = :u ORDER BY id"
        ),
        {"u": user_id},
    )
    return list(rows.all())


async def lots_version(session: AsyncSession, user_id: uuid.UUID) -> tuple[int, ...]:
    """(count, max id) of the user's fills and of their settlements: both tables are insert
    only, so a new row changes the count even when it commits under a lower id."""
    row = (
        await session.execute(
            text(
                "SELECT (SELECT count(*) FROM exchange_fills WHERE user_id = :u), "
                "       (SELECT coalesce(max(id), 0) FROM exchange_fills WHERE user_id = :u), "
                "       (SELECT count(*) FROM exchange_settlements WHERE user_id = :u), "
                "       (SELECT coalesce(max(id), 0) FROM exchange_settlements WHERE user_id = :u)"
            ),
            {"u": user_id},
        )
    ).one()
    return tuple(int(v) for v in row)


async def user_settlements(session: AsyncSession, user_id: uuid.UUID) -> list[Any]:
    rows = await session.execute(
        text(
            "SELECT ticker, result, yes_count, no_count, cost_basis, revenue, settled_at "
            "FROM exchange_settlements WHERE user_id = :u ORDER BY id"
        ),
        {"u": user_id},
    )
    return list(rows.all())


async def positions_of(session: AsyncSession, user_ids: Sequence[uuid.UUID]) -> list[Any]:
    rows = await session.execute(
        text(
            "SELECT user_id, ticker, position, cost_basis, realized_pnl, fees_paid "
            "FROM exchange_positions WHERE user_id = ANY(:u) AND position <> 0"
        ),
        {"u": list(user_ids)},
    )
    return list(rows.all())


async def market_marks(
    session: AsyncSession, tickers: Sequence[str], day_start: dt.datetime
) -> list[Any]:
    """Per market: title, status, result, best bid/ask, last price, and the close of the last
    traded minute before `day_start` (the previous close; one probe of the candles' key)."""
    rows = await session.execute(
        text(
            "SELECT m.ticker, m.title, m.status, m.result, m.yes_bid, m.yes_ask, m.last_price, "
            "       (SELECT c.price_close FROM exchange_candles c "
            "         WHERE c.market_id = m.id AND c.start_ts < :day "
            "           AND c.price_close IS NOT NULL "
            "         ORDER BY c.start_ts DESC LIMIT 1) "
            "  FROM exchange_markets m WHERE m.ticker = ANY(:t)"
        ),
        {"t": list(tickers), "day": day_start},
    )
    return list(rows.all())
