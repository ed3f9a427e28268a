"""The brokerage module's public API (keyword-only; never commits).

Orders: `orders.prepare` + `orders.send` (the API commits in between), `orders.cancel`,
`orders.prepare_replace` + `orders.send_replace`. Reads here: orders, fills, trades, positions,
buying power, assets and quotes. Accounts: `accounts.open_account`. The event consumer is
`events.consume`; reconciliation is `reconcile.reconcile`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from pull.brokerage import repository as repo
from pull.brokerage.errors import AssetNotFound, BrokerageUnavailable
from pull.brokerage.holdings import (  # the portfolio's reads
    ExecutionRow,
    StockMark,
    StockPosition,
    executions,
    lots_version,
    marks,
    open_positions,
)
from pull.brokerage.money import cents_of, plain
from pull.brokerage.orders import order_read, own_order
from pull.brokerage.providers.base import Broker, BrokerError, BrokerNotFound
from pull.brokerage.providers.factory import make_broker
from pull.brokerage.schemas import (
    AssetRead,
    BuyingPower,
    FillRead,
    OrderRead,
    PositionRead,
    QuoteRead,
    TradeRead,
)
from pull.ledger import service as ledger

__all__ = [
    "Broker",
    "ExecutionRow",
    "StockMark",
    "StockPosition",
    "assets",
    "buying_power",
    "executions",
    "fills",
    "get_order",
    "list_orders",
    "lots_version",
    "make_broker",
    "marks",
    "open_positions",
    "positions",
    "quote",
    "trades",
]


async def get_order(*, session: AsyncSession, user_id: uuid.UUID, order_id: uuid.UUID) -> OrderRead:
    return order_read(await own_order(session=session, user_id=user_id, order_id=order_id))


async def list_orders(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
    status: str | None = None,
    symbol: str | None = None,
) -> list[OrderRead]:
    rows = await repo.orders_page(
        session, user_id, before=before, limit=limit, status=status, symbol=symbol
    )
    return [order_read(r) for r in rows]


async def fills(
    *, session: AsyncSession, user_id: uuid.UUID, order_id: uuid.UUID
) -> list[FillRead]:
    order = await own_order(session=session, user_id=user_id, order_id=order_id)
    return [
        FillRead(
            execution_id=e.execution_id,
            qty=plain(e.applied_qty),
            price=plain(e.price),
            amount_cents=e.applied_cents,
            source=e.source,
            at=e.created_at,
        )
        for e in await repo.executions(session, order.id, applied_only=True)
    ]


async def trades(
    *, session: AsyncSession, user_id: uuid.UUID, before: int | None, limit: int
) -> list[tuple[int, TradeRead]]:
    rows = await repo.trades_page(session, user_id, before=before, limit=limit)
    return [
        (
            e.id,
            TradeRead(
                execution_id=e.execution_id,
                order_id=e.order_id,
                symbol=e.symbol,
                side=e.side,
                qty=plain(e.applied_qty),
                price=plain(e.price),
                amount_cents=e.applied_cents,
                source=e.source,
                at=e.created_at,
            ),
        )
        for e in rows
    ]


async def positions(
    *, session: AsyncSession, broker: Broker | None, user_id: uuid.UUID
) -> list[PositionRead]:
    out = []
    for p in await repo.positions(session, user_id):
        price: Decimal | None = None
        if broker is not None:
            try:
                q = await broker.get_quote(symbol=p.symbol)
                price = (q.bid + q.ask) / 2
            except BrokerError:
                price = None
        value = cents_of(p.qty * price) if price is not None else None
        out.append(
            PositionRead(
                symbol=p.symbol,
                asset_class=p.asset_class,
                qty=plain(p.qty),
                cost_cents=p.cost_cents,
                avg_cost=(Decimal(p.cost_cents) / 100 / p.qty).quantize(Decimal("0.0001")),
                current_price=price.quantize(Decimal("0.0001")) if price is not None else None,
                market_value_cents=value,
                unrealized_pl_cents=value - p.cost_cents if value is not None else None,
                realized_pl_cents=p.realized_cents,
            )
        )
    return out


async def buying_power(*, session: AsyncSession, user_id: uuid.UUID) -> BuyingPower:
    balance = await ledger.get_balance(session=session, user_id=user_id)
    return BuyingPower(
        available=balance.available,
        held=balance.held,
        held_for_orders=await repo.open_holds(session, user_id),
        pending=balance.pending_deposits,
        total=balance.available + balance.held + balance.pending_deposits,
    )


async def assets(*, broker: Broker, query: str | None) -> list[AssetRead]:
    try:
        found = await broker.list_assets(query=query)
    except BrokerError as exc:
        raise BrokerageUnavailable() from exc
    return [
        AssetRead(
            symbol=a.symbol,
            name=a.name,
            asset_class=a.asset_class,
            exchange=a.exchange,
            tradable=a.tradable,
            fractionable=a.fractionable,
        )
        for a in found[:200]
    ]


async def quote(*, broker: Broker, symbol: str) -> QuoteRead:
    try:
        q = await broker.get_quote(symbol=symbol.strip().upper())
    except BrokerNotFound as exc:
        raise AssetNotFound(details={"symbol": symbol}) from exc
    except BrokerError as exc:
        raise BrokerageUnavailable() from exc
    return QuoteRead(
        symbol=q.symbol,
        bid=q.bid,
        ask=q.ask,
        bid_size=q.bid_size,
        ask_size=q.ask_size,
        at=q.at,
        market_open=q.market_open,
    )
