"""A user's own orders, fills, positions and settlements (read-only)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import repository as repo
from pull.exchange.errors import (
    InvalidOrder,
    OrderNotFound,
)
from pull.exchange.models import Position
from pull.exchange.schemas import (
    FillRead,
    OrderRead,
    PositionRead,
    SettlementRead,
)
from pull.exchange.views import int_cursor, order_read, order_values
from pull.kit.pagination import Page, clamp_limit, decode_cursor, encode_cursor


async def get_order(*, session: AsyncSession, user_id: uuid.UUID, order_id: uuid.UUID) -> OrderRead:
    order = await repo.order_by_id(session, order_id, user_id=user_id)
    if order is None:
        raise OrderNotFound()
    qp = await repo.queue_position(session, order) if order.status == "resting" else None
    return order_read(order_values(order), qp)


async def list_orders(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    ticker: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[OrderRead]:
    n = clamp_limit(limit)
    c = decode_cursor(cursor)
    before = None
    if c:
        try:
            before = (dt.datetime.fromisoformat(c["t"]), uuid.UUID(c["id"]))
        except (KeyError, ValueError, TypeError):
            raise InvalidOrder("Invalid cursor", code="INVALID_CURSOR") from None
    rows = await repo.list_orders(
        session, user_id=user_id, ticker=ticker, status=status, before=before, limit=n
    )
    nxt = (
        encode_cursor({"t": rows[-1].created_at.isoformat(), "id": str(rows[-1].id)})
        if len(rows) == n
        else None
    )
    return Page(items=[order_read(order_values(o)) for o in rows], cursor=nxt)


async def list_fills(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    ticker: str | None = None,
    order_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[FillRead]:
    n = clamp_limit(limit)
    rows = await repo.list_fills(
        session,
        user_id=user_id,
        ticker=ticker,
        order_id=order_id,
        before=int_cursor(cursor),
        limit=n,
    )
    items = [
        FillRead(
            fill_id=f.id,
            trade_id=f.trade_id,
            order_id=f.order_id,
            ticker=f.ticker,
            side=f.side,
            action=f.action,
            count=f.count,
            yes_price=f.yes_price,
            no_price=100 - f.yes_price,
            is_taker=f.is_taker,
            fee=f.fee,
            created_time=f.created_at,
        )
        for f in rows
    ]
    nxt = encode_cursor({"id": rows[-1].id}) if len(rows) == n else None
    return Page(items=items, cursor=nxt)


def _position_read(p: Position, resting: tuple[int, int]) -> PositionRead:
    held = abs(p.position)
    return PositionRead(
        ticker=p.ticker,
        position=p.position,
        average_cost=p.cost_basis // held if held else None,
        cost_basis=p.cost_basis,
        market_exposure=p.cost_basis,
        realized_pnl=p.realized_pnl,
        fees_paid=p.fees_paid,
        total_traded=p.volume,
        resting_orders_count=resting[0],
        resting_order_value=resting[1],
        last_updated_ts=p.updated_at,
    )


async def list_positions(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    ticker: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[PositionRead]:
    n = clamp_limit(limit)
    after = (decode_cursor(cursor) or {}).get("t")
    rows = await repo.list_positions(
        session, user_id=user_id, ticker=ticker, after=str(after) if after else None, limit=n
    )
    resting = await repo.resting_summary(session, user_id, [p.market_id for p in rows])
    items = [_position_read(p, resting.get(p.market_id, (0, 0))) for p in rows]
    nxt = encode_cursor({"t": rows[-1].ticker}) if len(rows) == n else None
    return Page(items=items, cursor=nxt)


async def list_settlements(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[SettlementRead]:
    n = clamp_limit(limit)
    rows = await repo.list_settlements(session, user_id=user_id, before=int_cursor(cursor), limit=n)
    items = [
        SettlementRead(
            ticker=s.ticker,
            market_result=s.result,
            yes_count=s.yes_count,
            no_count=s.no_count,
            cost_basis=s.cost_basis,
            revenue=s.revenue,
            settled_time=s.settled_at,
        )
        for s in rows
    ]
    nxt = encode_cursor({"id": rows[-1].id}) if len(rows) == n else None
    return Page(items=items, cursor=nxt)
