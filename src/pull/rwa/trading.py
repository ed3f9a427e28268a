"""The secondary market: one limit order book per asset, matched by the exchange's engine.

The engine (`pull.exchange.engine.match`) is pure price-time matching over a binary market in
YES-price space. An RWA book is its degenerate case: every order is on the YES side, a buy is a
bid at its price in cents, a sell an ask, and a seller's "position" is the shares its resting
sells hold, so the engine never lets a sell sell more than it holds. Fees are zero in the
engine, so its YES/NO money arithmetic (100 - P) never enters: the engine only decides who
trades with whom, how many and at what price (the resting order's), and what is left; this
module moves the cash and the shares on the ledger for each execution.

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
from collections.abc import Hashable
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange.engine import BookOrder, EngineError, Incoming, PositionState, match
from pull.kit.db import utcnow
from pull.kit.errors import Conflict
from pull.kyc import service as kyc
from pull.ledger import service as ledger
from pull.rwa import repository as repo
from pull.rwa.assets import shares_account
from pull.rwa.errors import AssetNotFound, InvalidState
from pull.rwa.models import RwaAsset, RwaOrder, RwaTrade
from pull.rwa.repository import assets as asset_repo
from pull.rwa.repository import orders as order_repo
from pull.rwa.repository import positions as position_repo
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


async def _release(session: AsyncSession, asset: RwaAsset, order: RwaOrder) -> None:
    """Give back what an order that stops resting still holds."""
    if order.remaining == 0:
        return
    if order.side == "buy":
        amount = order.remaining * order.price_cents
        legs = [
            ledger.Leg(ledger.user_account(order.user_id, "held"), -amount),
            ledger.Leg(ledger.user_account(order.user_id, "cash"), amount),
        ]
    else:
        legs = [
            ledger.Leg(order_escrow(asset.currency), -order.remaining),
            ledger.Leg(shares_account(order.user_id, asset.currency), order.remaining),
        ]
    await ledger.transfer(
        session=session,
        idempotency_key=f"rwa:order:{order.id}:release",
        kind="rwa_order_release",
        legs=legs,
        reference=f"rwa_order:{order.id}",
    )


async def _hold(session: AsyncSession, asset: RwaAsset, order: RwaOrder) -> None:
    if order.side == "buy":
        amount = order.quantity * order.price_cents
        legs = [
            ledger.Leg(ledger.user_account(order.user_id, "cash"), -amount),
            ledger.Leg(ledger.user_account(order.user_id, "held"), amount),
        ]
    else:
        legs = [
            ledger.Leg(shares_account(order.user_id, asset.currency), -order.quantity),
            ledger.Leg(order_escrow(asset.currency), order.quantity),
        ]
    try:
        await ledger.transfer(
            session=session,
            idempotency_key=f"rwa:order:{order.id}:hold",
            kind="rwa_order_hold",
            legs=legs,
            reference=f"rwa_order:{order.id}",
        )
    except ledger.InsufficientFunds as exc:
        if order.side == "sell":
            raise InsufficientShares(details={"asset_id": str(asset.id)}) from exc
        raise


async def _settle_fills(
    session: AsyncSession,
    asset: RwaAsset,
    fills: list[tuple[RwaOrder, RwaOrder, int, int]],
    taker_side: str,
    now: dt.datetime,
) -> None:
    """Move the cash and shares of every execution of a placement (one ledger round trip for
    all of them) and update cost bases: the buyer adds what it paid; the seller removes the
    sold fraction of its basis, fill by fill (the basis over the shares it owned, in its
    account and its resting sells, before that fill)."""
    if not fills:
        return
    cur = asset.currency
    await ledger.transfer_many(
        session=session,
        transfers=[
            ledger.TransferSpec(
                idempotency_key=f"rwa:fill:{buy.id}:{sell.id}",
                kind="rwa_trade",
                legs=[
                    ledger.Leg(ledger.user_account(buy.user_id, "held"), -qty * buy.price_cents),
                    ledger.Leg(
                        ledger.user_account(buy.user_id, "cash"), qty * (buy.price_cents - price)
                    ),
                    ledger.Leg(ledger.user_account(sell.user_id, "cash"), qty * price),
                    ledger.Leg(order_escrow(cur), -qty),
                    ledger.Leg(shares_account(buy.user_id, cur), qty),
                ],
                reference=f"rwa_asset:{asset.id}",
                metadata={"price_cents": price, "quantity": qty},
            )
            for buy, sell, qty, price in fills
        ],
    )
    sellers = sorted({sell.user_id for _, sell, _, _ in fills})
    users = sorted({*sellers, *(buy.user_id for buy, _, _, _ in fills)})
    state = await order_repo.basis_and_open_sells(session, asset.id, users)
    held = await ledger.kind_balances(
        session=session, owners=sellers, kind=shares_account(sellers[0], cur).kind, currency=cur
    )
    basis = {u: state[u][0] for u in users}
    # What each seller owned before the first fill: its shares account plus its resting
    # sells (their `remaining` in the database are still those before this placement).
    owned = {u: held[u] + state[u][1] for u in sellers}
    for buy, sell, qty, price in fills:
        if owned[sell.user_id] > 0:
            taken = basis[sell.user_id] * qty // owned[sell.user_id]
            basis[sell.user_id] = max(0, basis[sell.user_id] - taken)
        owned[sell.user_id] -= qty
        basis[buy.user_id] = max(0, basis[buy.user_id] + qty * price)
        repo.add(
            session,
            RwaTrade(
                asset_id=asset.id,
                buy_order_id=buy.id,
                sell_order_id=sell.id,
                buyer_id=buy.user_id,
                seller_id=sell.user_id,
                price_cents=price,
                quantity=qty,
                taker_side=taker_side,
                created_at=now,
            ),
        )
    await position_repo.set_costs(session, asset.id, basis)


async def place_order(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    asset_id: uuid.UUID,
    side: str,
    price_cents: int,
    quantity: int,
    time_in_force: str = "gtc",
    trading_hours: str = "",
    now: dt.datetime | None = None,
) -> OrderRead:
    """Place a limit order: hold its cash or shares, match it against the book (price-time
    priority, at the resting order's price), rest what is left (gtc) or release it (ioc).

    The asset row is locked after the checks and the KYC tier, so one asset's book changes one
    order at a time; the executions' ledger transfers go in one round trip and the cost bases
    in one statement.
    409 TRADING_HALTED / MARKET_CLOSED / INSUFFICIENT_FUNDS / INSUFFICIENT_SHARES,
    403 KYC_REQUIRED."""
    now = now or utcnow()
    asset = await asset_repo.get_asset(session, asset_id)
    if asset is None:
        raise AssetNotFound()
    if asset.state != "trading":
        raise TradingHalted(details={"state": asset.state})
    if not market_open(trading_hours, now):
        raise MarketClosed(details={"trading_hours": trading_hours})
    tier = await kyc.get_tier(session=session, user_id=user_id, now=now)
    if tier.rank < kyc.Tier.basic.rank:
        raise kyc.KycRequired(kyc.Tier.basic.value)
    order = RwaOrder(
        id=uuid.uuid4(),
        asset_id=asset_id,
        user_id=user_id,
        side=side,
        price_cents=price_cents,
        quantity=quantity,
        remaining=quantity,
        filled_cents=0,
        time_in_force=time_in_force,
        status="resting",
        created_at=now,
        updated_at=now,
    )
    # The book: from here to the commit, one placement at a time per asset (its row lock).
    # The checks and KYC ran before taking it. The order row and its hold come after: the
    # row's foreign key share-locks the asset row (two placements holding that share lock
    # and both asking for the update lock deadlock), and a hold's ledger locks taken first
    # would deadlock with a placement that fills this user's resting order.
    locked = await asset_repo.get_asset(session, asset_id, lock=True)
    assert locked is not None
    if locked.state != "trading":
        raise TradingHalted(details={"state": locked.state})
    repo.add(session, order)
    await session.flush()
    await _hold(session, asset, order)
    opposite = "sell" if side == "buy" else "buy"
    makers = await order_repo.lock_crossing(
        session, asset_id, side=opposite, limit_price=price_cents, quantity=quantity
    )
    by_id: dict[Hashable, RwaOrder] = {m.id: m for m in makers}
    positions: dict[Hashable, PositionState] = {}
    for m in makers:
        if m.side == "sell":
            positions.setdefault(m.user_id, PositionState()).position += m.remaining
    if side == "sell":
        positions.setdefault(user_id, PositionState()).position += quantity
    try:
        result = match(
            Incoming(
                id=order.id,
                user_id=user_id,
                side="yes",
                action="buy" if side == "buy" else "sell",
                yes_price=price_cents,
                count=quantity,
                seq=order.seq,
                time_in_force="immediate_or_cancel"
                if time_in_force == "ioc"
                else "good_till_canceled",
            ),
            [
                BookOrder(
                    id=m.id,
                    user_id=m.user_id,
                    side="yes",
                    action="buy" if m.side == "buy" else "sell",
                    yes_price=m.price_cents,
                    seq=m.seq,
                    remaining=m.remaining,
                    hold=m.remaining * m.price_cents if m.side == "buy" else 0,
                )
                for m in makers
            ],
            positions,
            taker_fee_bps=0,
            maker_fee_bps=0,
            now=now,
        )
    except EngineError as exc:  # pragma: no cover - post-only is never asked for
        raise InvalidState(exc.message, code=exc.code) from exc

    fills: list[tuple[RwaOrder, RwaOrder, int, int]] = []
    for e in result.executions:
        maker = by_id[e.maker_order_id]
        buy, sell = (order, maker) if side == "buy" else (maker, order)
        fills.append((buy, sell, e.count, e.yes_price))
    await _settle_fills(session, asset, fills, side, now)
    for e in result.executions:
        maker = by_id[e.maker_order_id]
        for o in (order, maker):
            o.remaining -= e.count
            o.filled_cents += e.count * e.yes_price
            o.updated_at = now
        if maker.remaining == 0:
            maker.status = "executed"
    for upd in result.makers.values():
        maker = by_id[upd.order.id]
        if upd.status == "canceled" and maker.status == "resting":
            await _release(session, asset, maker)
            maker.status = "canceled"
            maker.cancel_reason = upd.cancel_reason
    if order.remaining == 0:
        order.status = "executed"
    elif result.status == "canceled":
        await _release(session, asset, order)
        order.status = "canceled"
        order.cancel_reason = result.cancel_reason
    await session.flush()
    return order_read(order)


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
