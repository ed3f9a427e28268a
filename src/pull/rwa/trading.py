"""The secondary market: one limit order book per asset, matched by the exchange's engine.

The engine (`pull.exchange.engine.match`) is pure price-time matching over a binary market in
YES-price space. An RWA book is its degenerate case: every order is on the YES side, a buy is a
bid at its price in cents, a sell an ask, and a seller's "position" is the shares its resting
sells hold, so the engine never lets a sell sell more than it holds. Fees are zero in the
engine, so its YES/NO money arithmetic (100 - P) never enters: the engine only decides who
trades with whom, how many and at what price (the resting order's), and what is left;
`placement` runs it per order (one or a batch in one transaction) and moves the cash and the
shares on the ledger for each execution. This module: the rules, cancels and decreases.

Ledger (keys):
    rwa:order:<id>:hold     buy: cash -> held (quantity x limit); sell: shares -> rwa.orders
    rwa:fill:<buy>:<sell>   buyer held -qty x limit, buyer cash +qty x (limit - price),
                            seller cash +qty x price; rwa.orders -qty, buyer shares +qty
    rwa:order:<id>:release  what a canceled or expired order still holds goes back
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from pull.kit.db import utcnow
from pull.kit.errors import Conflict
from pull.ledger import service as ledger
from pull.rwa.assets import shares_account
from pull.rwa.errors import InvalidState
from pull.rwa.models import RwaAsset, RwaOrder
from pull.rwa.repository import assets as asset_repo
from pull.rwa.repository import orders as order_repo
from pull.rwa.schemas import OrderRead

ORDERS = "rwa.orders"  # shares offered by resting sells, per share currency
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(\w{3})-(\w{3}) (\d\d):(\d\d)-(\d\d):(\d\d) (\S+)$")


class MarketClosed(Conflict):
    code = "MARKET_CLOSED"
    message = "Outside the secondary market's trading hours"


class TradingHalted(Conflict):
    code = "TRADING_HALTED"
    message = "The asset is not trading"


class OrderNotFound(InvalidState):
    status_code = 404
    code = "ORDER_NOT_FOUND"
    message = "Order not found"


class InsufficientShares(Conflict):
    code = "INSUFFICIENT_SHARES"
    message = "Not enough shares to sell"


def order_escrow(currency: str) -> ledger.AccountRef:
    return ledger.system_account(ORDERS, currency)


@lru_cache(maxsize=8)
def _hours(spec: str) -> tuple[int, int, int, int, ZoneInfo] | None:
    if not spec:
        return None
    m = _HOURS.match(spec)
    if m is None:
        raise ValueError(f"invalid RWA_TRADING_HOURS {spec!r}")
    first, last = DAYS.index(m.group(1)), DAYS.index(m.group(2))
    start = int(m.group(3)) * 60 + int(m.group(4))
    end = int(m.group(5)) * 60 + int(m.group(6))
    return first, last, start, end, ZoneInfo(m.group(7))


def market_open(spec: str, now: dt.datetime) -> bool:
    """Whether `now` is within the trading hours `spec` (empty: always)."""
    hours = _hours(spec)
    if hours is None:
        return True
    first, last, start, end, zone = hours
    local = now.astimezone(zone)
    day = local.weekday()
    in_days = first <= day <= last if first <= last else (day >= first or day <= last)
    minute = local.hour * 60 + local.minute
    return in_days and start <= minute < end


def order_read(o: RwaOrder) -> OrderRead:
    return OrderRead(
        id=o.id,
        asset_id=o.asset_id,
        side=o.side,
        price_cents=o.price_cents,
        quantity=o.quantity,
        remaining=o.remaining,
        filled=o.quantity - o.remaining,
        filled_cents=o.filled_cents,
        time_in_force=o.time_in_force,
        status=o.status,
        cancel_reason=o.cancel_reason,
        created_at=o.created_at,
        updated_at=o.updated_at,
    )


def release_spec(order: RwaOrder, currency: str) -> ledger.TransferSpec:
    """The transfer giving back what an order that stops resting still holds (its
    `remaining`)."""
    if order.side == "buy":
        amount = order.remaining * order.price_cents
        legs = [
            ledger.Leg(ledger.user_account(order.user_id, "held"), -amount),
            ledger.Leg(ledger.user_account(order.user_id, "cash"), amount),
        ]
    else:
        legs = [
            ledger.Leg(order_escrow(currency), -order.remaining),
            ledger.Leg(shares_account(order.user_id, currency), order.remaining),
        ]
    return ledger.TransferSpec(
        idempotency_key=f"rwa:order:{order.id}:release",
        kind="rwa_order_release",
        legs=legs,
        reference=f"rwa_order:{order.id}",
    )


async def _release(session: AsyncSession, asset: RwaAsset, order: RwaOrder) -> None:
    """Give back what an order that stops resting still holds."""
    if order.remaining == 0:
        return
    spec = release_spec(order, asset.currency)
    await ledger.transfer(
        session=session,
        idempotency_key=spec.idempotency_key,
        kind=spec.kind,
        legs=spec.legs,
        reference=spec.reference,
    )


async def cancel_order(
    *, session: AsyncSession, user_id: uuid.UUID, order_id: uuid.UUID, reason: str = "canceled"
) -> OrderRead:
    """Cancel a resting order of the caller's; what it holds goes back."""
    found = await order_repo.get_order(session, order_id)
    if found is None or found.user_id != user_id:
        raise OrderNotFound()
    asset = await asset_repo.get_asset(session, found.asset_id, lock=True)
    assert asset is not None
    order = await order_repo.get_order(session, order_id, lock=True)
    assert order is not None
    if order.status != "resting":
        raise InvalidState(details={"status": order.status})
    await _release(session, asset, order)
    order.status = "canceled"
    order.cancel_reason = reason
    order.updated_at = utcnow()
    await session.flush()
    return order_read(order)


async def decrease_order(
    *, session: AsyncSession, user_id: uuid.UUID, order_id: uuid.UUID, reduce_by: int
) -> OrderRead:
    """Shrink a resting order by `reduce_by` shares (it keeps its place in the queue); what the
    shares held goes back. Reducing it to nothing cancels it."""
    found = await order_repo.get_order(session, order_id)
    if found is None or found.user_id != user_id:
        raise OrderNotFound()
    asset = await asset_repo.get_asset(session, found.asset_id, lock=True)
    assert asset is not None
    order = await order_repo.get_order(session, order_id, lock=True)
    assert order is not None
    if order.status != "resting":
        raise InvalidState(details={"status": order.status})
    if reduce_by >= order.remaining:
        await _release(session, asset, order)
        order.status = "canceled"
        order.cancel_reason = "decreased"
    else:
        after = order.remaining - reduce_by
        if order.side == "buy":
            amount = reduce_by * order.price_cents
            legs = [
                ledger.Leg(ledger.user_account(order.user_id, "held"), -amount),
                ledger.Leg(ledger.user_account(order.user_id, "cash"), amount),
            ]
        else:
            legs = [
                ledger.Leg(order_escrow(asset.currency), -reduce_by),
                ledger.Leg(shares_account(order.user_id, asset.currency), reduce_by),
            ]
        await ledger.transfer(
            session=session,
            idempotency_key=f"rwa:order:{order.id}:decrease:{after}",
            kind="rwa_order_release",
            legs=legs,
            reference=f"rwa_order:{order.id}",
        )
        order.remaining = after
    order.updated_at = utcnow()
    await session.flush()
    return order_read(order)


async def cancel_all(*, session: AsyncSession, asset: RwaAsset, reason: str) -> int:
    """Cancel every resting order of an asset (trading halts); the caller holds its lock."""
    rows = await order_repo.resting_orders(session, asset.id)
    now = utcnow()
    for order in rows:
        await _release(session, asset, order)
        order.status = "canceled"
        order.cancel_reason = reason
        order.updated_at = now
    await session.flush()
    return len(rows)


async def get_order(*, session: AsyncSession, user_id: uuid.UUID, order_id: uuid.UUID) -> OrderRead:
    order = await order_repo.get_order(session, order_id)
    if order is None or order.user_id != user_id:
        raise OrderNotFound()
    return order_read(order)


async def list_orders(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    asset_id: uuid.UUID | None = None,
    status: str | None = None,
    before: tuple[dt.datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[OrderRead]:
    rows = await order_repo.user_orders(
        session, user_id, asset_id=asset_id, status=status, before=before, limit=limit
    )
    return [order_read(o) for o in rows]
