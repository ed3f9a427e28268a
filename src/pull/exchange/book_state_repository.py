"""SQL of the published book state (exchange_book_state) and of what one book command changed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass
class StateRow:
    market_id: uuid.UUID
    seq: int
    levels: dict[str, dict[str, int]]
    last_fill_id: int
    status: str


def _levels(value: Any) -> dict[str, dict[str, int]]:
    value = value or {}
    return {
        "yes": {str(k): int(v) for k, v in (value.get("yes") or {}).items()},
        "no": {str(k): int(v) for k, v in (value.get("no") or {}).items()},
    }


_STATE = (
    "SELECT s.market_id, s.seq, s.levels, s.last_fill_id, s.status "
    "FROM exchange_book_state s JOIN exchange_markets m ON m.id = s.market_id "
    "WHERE m.ticker = :t"
)


async def lock_state(session: AsyncSession, ticker: str) -> StateRow | None:
    """The market's state row, locked until commit (taken after the market row's lock)."""
    row = (await session.execute(text(_STATE + " FOR UPDATE OF s"), {"t": ticker})).first()
    if row is None:
        return None
    return StateRow(
        row.market_id, int(row.seq), _levels(row.levels), int(row.last_fill_id), row.status
    )


async def read_state(session: AsyncSession, ticker: str) -> StateRow | None:
    row = (await session.execute(text(_STATE), {"t": ticker})).first()
    if row is None:
        return None
    return StateRow(
        row.market_id, int(row.seq), _levels(row.levels), int(row.last_fill_id), row.status
    )


_CHANGES = text(
    """
    SELECT
      (SELECT coalesce(jsonb_agg(jsonb_build_array(is_bid, yes_price, c)), '[]'::jsonb)
         FROM (SELECT is_bid, yes_price, sum(remaining_count)::bigint AS c
                 FROM exchange_orders WHERE market_id = :m AND status = 'resting'
                GROUP BY is_bid, yes_price) a) AS levels,
      (SELECT coalesce(jsonb_agg(to_jsonb(f) ORDER BY f.id), '[]'::jsonb)
         FROM (SELECT id, trade_id, order_id, user_id, side, action, count, yes_price,
                      is_taker, fee, created_at
                 FROM exchange_fills WHERE market_id = :m AND id > :last) f) AS fills,
      (SELECT to_jsonb(x) FROM (SELECT ticker, status, last_price, yes_bid, yes_ask, volume,
                                       open_interest, result
                                  FROM exchange_markets WHERE id = :m) x) AS market
    """
)


@dataclass
class Changes:
    yes: dict[str, int]
    no: dict[str, int]
    fills: list[dict[str, Any]]
    market: dict[str, Any]


async def read_changes(session: AsyncSession, market_id: uuid.UUID, last_fill_id: int) -> Changes:
    """The market's live book (aggregated by level), its fills after `last_fill_id` and its
    top-of-book counters, in one statement (one snapshot)."""
    row = (await session.execute(_CHANGES, {"m": market_id, "last": last_fill_id})).one()
    yes: dict[str, int] = {}
    no: dict[str, int] = {}
    for is_bid, yes_price, count in _json(row.levels):
        if int(count) <= 0:
            continue
        if is_bid:
            yes[str(int(yes_price))] = int(count)
        else:
            no[str(100 - int(yes_price))] = int(count)
    return Changes(yes=yes, no=no, fills=list(_json(row.fills)), market=dict(_json(row.market)))


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


_ORDERS_AND_POSITIONS = text(
    """
    SELECT
      (SELECT coalesce(jsonb_agg(to_jsonb(o)), '[]'::jsonb)
         FROM exchange_orders o WHERE o.id = ANY(:ids)) AS orders,
      (SELECT coalesce(jsonb_agg(to_jsonb(p)), '[]'::jsonb)
         FROM (SELECT user_id, position, cost_basis, realized_pnl, fees_paid, volume, updated_at
                 FROM exchange_positions
                WHERE market_id = :m AND user_id = ANY(:users)) p) AS positions
    """
)


async def orders_and_positions(
    session: AsyncSession,
    market_id: uuid.UUID,
    order_ids: Sequence[uuid.UUID],
    user_ids: Sequence[uuid.UUID],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    row = (
        await session.execute(
            _ORDERS_AND_POSITIONS,
            {"m": market_id, "ids": list(order_ids), "users": list(user_ids)},
        )
    ).one()
    return list(_json(row.orders)), list(_json(row.positions))


async def save_state(
    session: AsyncSession,
    *,
    market_id: uuid.UUID,
    seq: int,
    levels: dict[str, dict[str, int]],
    last_fill_id: int,
    status: str,
) -> None:
    await session.execute(
        text(
            "UPDATE exchange_book_state SET seq = :seq, levels = CAST(:levels AS jsonb), "
            "last_fill_id = :lf, status = :status WHERE market_id = :m"
        ),
        {
            "m": market_id,
            "seq": seq,
            "levels": orjson.dumps(levels).decode(),
            "lf": last_fill_id,
            "status": status,
        },
    )


async def read_levels(
    session: AsyncSession, tickers: list[str]
) -> dict[str, dict[str, dict[str, int]]]:
    rows = await session.execute(
        text(
            "SELECT m.ticker, s.levels FROM exchange_book_state s "
            "JOIN exchange_markets m ON m.id = s.market_id WHERE m.ticker = ANY(:t)"
        ),
        {"t": tickers},
    )
    return {r.ticker: _levels(r.levels) for r in rows}
