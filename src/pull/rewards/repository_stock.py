"""SQL of the stock holds (see models.StockHold and redemption's docstring). Nothing here
commits; the caller's boundary does."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from pull.rewards import sold_out

_TAKE = text(
    "WITH r AS (UPDATE rewards_catalog SET stock = stock - :q "
    "WHERE id = :id AND stock IS NOT NULL AND stock >= :q RETURNING id) "
    "INSERT INTO rewards_stock_holds (id, item_id, quantity) SELECT :h, id, :q FROM r "
    "RETURNING id"
)
_GIVE_BACK = text(
    "WITH d AS (DELETE FROM rewards_stock_holds WHERE id = ANY(:ids) "
    "RETURNING item_id, quantity), s AS (SELECT item_id, sum(quantity) AS q FROM d "
    "GROUP BY item_id) UPDATE rewards_catalog c SET stock = c.stock + s.q, updated_at = now() "
    "FROM s WHERE c.id = s.item_id RETURNING c.id"
)


async def take_stock(
    session: AsyncSession, hold_id: uuid.UUID, item_id: uuid.UUID, quantity: int
) -> bool:
    """In a transaction of its own: take `quantity` from a limited stock into a hold row.
    Its commit need not wait for the WAL flush (synchronous_commit off): lost in a crash, the
    hold and the decrement are lost together, and the redemption that deletes the hold
    commits (flushing) after it."""
    await session.execute(text("SET LOCAL synchronous_commit = off"))
    row = await session.execute(_TAKE, {"h": hold_id, "id": item_id, "q": quantity})
    return row.scalar_one_or_none() is not None


async def settle_hold(session: AsyncSession, hold_id: uuid.UUID) -> bool:
    """In the redemption's transaction: its hold is spent (False: it was given back)."""
    row = await session.execute(
        text("DELETE FROM rewards_stock_holds WHERE id = :h RETURNING id"), {"h": hold_id}
    )
    return row.scalar_one_or_none() is not None


async def give_back_holds(session: AsyncSession, hold_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Holds still there (their redemption never committed) back into stock: the items."""
    if not hold_ids:
        return []
    rows = await session.execute(_GIVE_BACK, {"ids": list(hold_ids)})
    items = [r[0] for r in rows]
    sold_out.raised(session, items)
    return items


async def stale_holds(
    session: AsyncSession, item_id: uuid.UUID, before: dt.datetime
) -> list[uuid.UUID]:
    rows = await session.execute(
        text(
            "SELECT id FROM rewards_stock_holds WHERE item_id = :i AND created_at < :t "
            "ORDER BY created_at LIMIT 1000"
        ),
        {"i": item_id, "t": before},
    )
    return [r[0] for r in rows]
