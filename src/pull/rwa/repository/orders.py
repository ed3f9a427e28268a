"""SQL of the secondary market: orders, the book, trades and candles."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import and_, or_, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from pull.rwa.models import (
    RwaOrder,
    RwaTrade,
)

# --- secondary orders and trades ------------------------------------------------------------


_LEVELS = {
    "buy": text(
        "SELECT price_cents, sum(remaining)::bigint, count(*) FROM rwa_orders "
        "WHERE asset_id = :a AND side = 'buy' AND status = 'resting' "
        "GROUP BY price_cents ORDER BY price_cents DESC LIMIT :d"
    ),
    "sell": text(
        "SELECT price_cents, sum(remaining)::bigint, count(*) FROM rwa_orders "
        "WHERE asset_id = :a AND side = 'sell' AND status = 'resting' "
        "GROUP BY price_cents ORDER BY price_cents LIMIT :d"
    ),
}


# Resting orders crossing a limit, best first, until their shares cover the quantity; locked.
_LOCK_CROSSING = {
    "sell": text(
        "SELECT * FROM rwa_orders WHERE id IN (SELECT id FROM (SELECT id, "
        "sum(remaining) OVER (ORDER BY price_cents, seq) - remaining AS before "
        "FROM rwa_orders WHERE asset_id = :a AND side = 'sell' AND status = 'resting' "
        "AND price_cents <= :p) q WHERE before < :n) FOR UPDATE"
    ),
    "buy": text(
        "SELECT * FROM rwa_orders WHERE id IN (SELECT id FROM (SELECT id, "
        "sum(remaining) OVER (ORDER BY price_cents DESC, seq) - remaining AS before "
        "FROM rwa_orders WHERE asset_id = :a AND side = 'buy' AND status = 'resting' "
        "AND price_cents >= :p) q WHERE before < :n) FOR UPDATE"
    ),
}


async def lock_asset_for_orders(
    session: AsyncSession, asset_id: uuid.UUID, count: int
) -> tuple[str, str, list[int]] | None:
    """Lock an asset's row (its book changes one placement at a time) and draw `count` order
    sequence numbers, in one statement: (state, share currency, seqs), or None."""
    row = (
        await session.execute(
            text(
                "SELECT a.state, 'RWA' || a.seq, ARRAY(SELECT nextval("
                "pg_get_serial_sequence('rwa_orders', 'seq')) FROM generate_series(1, :n)) "
                "FROM rwa_assets a WHERE a.id = :a FOR UPDATE"
            ),
            {"a": asset_id, "n": count},
        )
    ).one_or_none()
    if row is None:
        return None
    return str(row[0]), str(row[1]), [int(v) for v in row[2]]


async def lock_crossing(
    session: AsyncSession,
    asset_id: uuid.UUID,
    *,
    side: str,
    limit_price: int,
    quantity: int,
) -> list[RwaOrder]:
    """Resting orders of `side` that cross `limit_price`, best first (price, then time), just
    enough of them to fill `quantity`, chosen and locked in one statement; the caller holds
    the asset's lock, so the book cannot change between the choice and the lock."""
    stmt = (
        select(RwaOrder)
        .from_statement(_LOCK_CROSSING[side])
        .params(a=asset_id, p=limit_price, n=quantity)
    )
    found = list((await session.execute(stmt)).scalars())
    found.sort(key=lambda o: (o.price_cents if side == "sell" else -o.price_cents, o.seq))
    return found


async def basis_and_open_sells(
    session: AsyncSession, asset_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int]]:
    """Per user: (cost basis in the asset, shares in their resting sells), one read."""
    rows = await session.execute(
        text(
            "SELECT u, coalesce((SELECT cost_basis_cents FROM rwa_positions p "
            "  WHERE p.user_id = u AND p.asset_id = :a), 0)::bigint, "
            "coalesce((SELECT sum(remaining) FROM rwa_orders o WHERE o.user_id = u "
            "  AND o.asset_id = :a AND o.side = 'sell' AND o.status = 'resting'), 0)::bigint "
            "FROM unnest(CAST(:us AS uuid[])) AS u"
        ),
        {"a": asset_id, "us": list(user_ids)},
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


async def get_order(
    session: AsyncSession, order_id: uuid.UUID, *, lock: bool = False
) -> RwaOrder | None:
    stmt = select(RwaOrder).where(RwaOrder.id == order_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def user_orders(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    asset_id: uuid.UUID | None,
    status: str | None,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[RwaOrder]:
    stmt = select(RwaOrder).where(RwaOrder.user_id == user_id)
    if asset_id is not None:
        stmt = stmt.where(RwaOrder.asset_id == asset_id)
    if status is not None:
        stmt = stmt.where(RwaOrder.status == status)
    if before is not None:
        t, i = before
        stmt = stmt.where(
            or_(RwaOrder.created_at < t, and_(RwaOrder.created_at == t, RwaOrder.id < i))
        )
    stmt = stmt.order_by(RwaOrder.created_at.desc(), RwaOrder.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def resting_orders(session: AsyncSession, asset_id: uuid.UUID) -> list[RwaOrder]:
    stmt = (
        select(RwaOrder)
        .where(RwaOrder.asset_id == asset_id, RwaOrder.status == "resting")
        .order_by(RwaOrder.seq)
        .with_for_update()
    )
    return list((await session.execute(stmt)).scalars())


async def book_levels(
    session: AsyncSession, asset_id: uuid.UUID, depth: int
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """(price, shares, orders) per level: bids best (highest) first, asks best (lowest) first."""
    out: list[list[tuple[int, int, int]]] = []
    for side in ("buy", "sell"):
        rows = await session.execute(_LEVELS[side], {"a": asset_id, "d": depth})
        out.append([(r[0], r[1], r[2]) for r in rows.all()])
    return out[0], out[1]


async def open_sell_shares(session: AsyncSession, user_id: uuid.UUID) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        text(
            "SELECT asset_id, sum(remaining)::bigint FROM rwa_orders "
            "WHERE user_id = :u AND side = 'sell' AND status = 'resting' GROUP BY asset_id"
        ),
        {"u": user_id},
    )
    return {r[0]: r[1] for r in rows.all()}


async def user_open_sells(session: AsyncSession, user_id: uuid.UUID, asset_id: uuid.UUID) -> int:
    value = await session.scalar(
        text(
            "SELECT COALESCE(sum(remaining), 0)::bigint FROM rwa_orders "
            "WHERE user_id = :u AND asset_id = :a AND side = 'sell' AND status = 'resting'"
        ),
        {"u": user_id, "a": asset_id},
    )
    return int(value or 0)


async def trades(
    session: AsyncSession, asset_id: uuid.UUID, *, before_id: int | None, limit: int
) -> list[RwaTrade]:
    stmt = select(RwaTrade).where(RwaTrade.asset_id == asset_id)
    if before_id is not None:
        stmt = stmt.where(RwaTrade.id < before_id)
    stmt = stmt.order_by(RwaTrade.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def last_trade_prices(
    session: AsyncSession, asset_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not asset_ids:
        return {}
    stmt = (
        select(RwaTrade.asset_id, RwaTrade.price_cents)
        .where(RwaTrade.asset_id.in_(asset_ids))
        .ext(distinct_on(RwaTrade.asset_id))
        .order_by(RwaTrade.asset_id, RwaTrade.id.desc())
    )
    return {r[0]: r[1] for r in (await session.execute(stmt)).all()}


async def candles(
    session: AsyncSession,
    asset_id: uuid.UUID,
    *,
    seconds: int,
    start: dt.datetime,
    end: dt.datetime,
) -> list[tuple[dt.datetime, int, int, int, int, int]]:
    """OHLC and volume per bucket of `seconds` from the trades between start and end."""
    rows = await session.execute(
        text(
            "SELECT b, (array_agg(price_cents ORDER BY id))[1], max(price_cents), "
            "min(price_cents), (array_agg(price_cents ORDER BY id DESC))[1], "
            "sum(quantity)::bigint FROM (SELECT id, price_cents, quantity, "
            "date_bin(make_interval(secs => :s), created_at, TIMESTAMPTZ '2000-01-01') AS b "
            "FROM rwa_trades WHERE asset_id = :a AND created_at >= :start "
            "AND created_at < :end) t GROUP BY b ORDER BY b"
        ),
        {"s": seconds, "a": asset_id, "start": start, "end": end},
    )
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows.all()]
