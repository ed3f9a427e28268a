"""Orders: intake (validation, idempotency, the cash hold, the funding journal), submission,
cancel and replace. `fills.converge` is the one function that applies what the broker reports.

Money (docs/brokerage.md):
- a buy holds cash at submit: a pending ledger transfer user `cash` -> `brokerage_omnibus`
  of qty x limit (or x quote x (1 + buffer) for market and stop orders, the notional for a
  notional order), and the same amount is journaled to the customer's broker account;
- a fill posts its cost from the hold (and holds the rest again while the order is open);
- a sell fill credits the proceeds from `brokerage_omnibus` to the user's cash;
- when the order is done (filled, canceled, expired, rejected, replaced) the rest of the hold
  is voided and what the broker account no longer needs is journaled back to the firm.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.brokerage import accounts, states
from pull.brokerage import repository as repo
from pull.brokerage.errors import (
    AssetNotFound,
    AssetNotTradable,
    BrokerageUnavailable,
    InsufficientShares,
    InvalidOrder,
    OrderNotCancelable,
    OrderNotFound,
    OrderNotReplaceable,
    PriceNotAllowed,
    QtyOrNotional,
)
from pull.brokerage.fills import OMNIBUS, converge, hold_key, reject
from pull.brokerage.models import BrokerageOrder
from pull.brokerage.money import (
    cents_ceil,
    dollars,
    places,
    plain,
    plain_or_none,
)
from pull.brokerage.providers.base import (
    Asset,
    Broker,
    BrokerError,
    BrokerOrder,
    BrokerRejected,
    OrderRequest,
    ReplaceRequest,
)
from pull.brokerage.schemas import OrderCreate, OrderRead, OrderReplace
from pull.kit.db import utcnow
from pull.kit.idempotency import IdempotencyKeyRequired, IdempotencyKeyReused, check_key
from pull.kyc import service as kyc
from pull.ledger import service as ledger


def order_read(o: BrokerageOrder) -> OrderRead:
    return OrderRead(
        id=o.id,
        client_order_id=o.client_order_id,
        symbol=o.symbol,
        asset_class=o.asset_class,
        side=o.side,
        type=o.type,
        time_in_force=o.time_in_force,
        qty=plain_or_none(o.qty),
        notional=o.notional_cents,
        limit_price=plain_or_none(o.limit_price),
        stop_price=plain_or_none(o.stop_price),
        status=o.status,
        filled_qty=plain(o.filled_qty),
        filled_avg_price=plain_or_none(o.filled_avg_price),
        filled_cents=o.filled_cents,
        hold_cents=o.hold_cents,
        replaces=o.replaces_id,
        replaced_by=o.replaced_by_id,
        reject_reason=o.reject_reason,
        created_at=o.created_at,
        updated_at=o.updated_at,
    )


def _hash(body: dict[str, Any]) -> str:
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Intake:
    order: OrderRead
    replayed: bool
    order_id: uuid.UUID


# --- validation ------------------------------------------------------------------------------


def validate_shape(
    *,
    type_: str,
    qty: Decimal | None,
    notional: int | None,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
) -> None:
    if type_ == "market" and (limit_price is not None or stop_price is not None):
        raise PriceNotAllowed()
    if type_ == "limit" and stop_price is not None:
        raise PriceNotAllowed("A limit order takes no stop_price")
    if type_ == "stop" and limit_price is not None:
        raise PriceNotAllowed("A stop order takes no limit_price (use stop_limit)")
    if type_ in ("limit", "stop_limit") and limit_price is None:
        raise InvalidOrder(f"A {type_} order needs limit_price", code="LIMIT_PRICE_REQUIRED")
    if type_ in ("stop", "stop_limit") and stop_price is None:
        raise InvalidOrder(f"A {type_} order needs stop_price", code="STOP_PRICE_REQUIRED")
    if (qty is None) == (notional is None):
        raise QtyOrNotional()
    if qty is not None and places(qty) > 9:
        raise InvalidOrder("qty has at most 9 decimals", code="INVALID_QTY")
    for price in (limit_price, stop_price):
        if price is not None and places(price) > 9:
            raise InvalidOrder("prices have at most 9 decimals", code="INVALID_PRICE")
    if notional is not None and type_ != "market":
        raise InvalidOrder("A notional order is a market order", code="NOTIONAL_MARKET_ONLY")


def validate_asset(asset: Asset, *, tif: str, qty: Decimal | None, notional: int | None) -> None:
    if not asset.tradable:
        raise AssetNotTradable()
    fractional = notional is not None or (qty is not None and qty % 1 != 0)
    if asset.asset_class == "crypto":
        if tif not in ("gtc", "ioc"):
            raise InvalidOrder(
                "Crypto orders take time_in_force gtc or ioc", code="INVALID_TIME_IN_FORCE"
            )
    elif fractional:
        if not asset.fractionable:
            raise InvalidOrder(f"{asset.symbol} trades in whole shares", code="NOT_FRACTIONABLE")
        if tif != "day":
            raise InvalidOrder(
                "Fractional and notional orders are day orders", code="INVALID_TIME_IN_FORCE"
            )


def _hold_cents(
    *,
    type_: str,
    qty: Decimal | None,
    notional: int | None,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    ask: Decimal,
    buffer_bps: int,
) -> int:
    if notional is not None:
        return notional
    assert qty is not None
    if type_ in ("limit", "stop_limit"):
        assert limit_price is not None
        return cents_ceil(qty * limit_price)
    price = max(ask, stop_price) if type_ == "stop" and stop_price is not None else ask
    return cents_ceil(qty * price * (10_000 + buffer_bps) / 10_000)


# --- intake ------------------------------------------------------------------------------------


async def prepare(
    *,
    session: AsyncSession,
    broker: Broker,
    user_id: uuid.UUID,
    data: OrderCreate,
    idempotency_key: str | None,
    buffer_bps: int,
) -> Intake:
    """Validate, dedupe and record an order, hold its cash and queue its funding journal.
    The caller commits, then calls `send`."""
    key = data.client_order_id or (idempotency_key or "").strip() or None
    if key is None:
        raise IdempotencyKeyRequired("Send client_order_id or an Idempotency-Key header")
    key = check_key(key)
    body = data.model_dump(mode="json", exclude={"client_order_id"})
    body["symbol"] = data.symbol.strip().upper()
    digest = _hash(body)
    await repo.lock_user(session, user_id)
    found = await repo.order_by_client_id(session, user_id, key)
    if found is not None:
        if found.request_hash != digest:
            raise IdempotencyKeyReused(details={"client_order_id": key})
        return Intake(order_read(found), True, found.id)

    account = await accounts.require_account(session=session, user_id=user_id)
    symbol = body["symbol"]
    validate_shape(
        type_=data.type,
        qty=data.qty,
        notional=data.notional,
        limit_price=data.limit_price,
        stop_price=data.stop_price,
    )
    try:
        asset = await broker.get_asset(symbol=symbol)
    except BrokerError as exc:
        raise BrokerageUnavailable() from exc
    if asset is None:
        raise AssetNotFound(details={"symbol": symbol})
    validate_asset(asset, tif=data.time_in_force, qty=data.qty, notional=data.notional)
    try:
        quote = await broker.get_quote(symbol=symbol)
    except BrokerError as exc:
        raise BrokerageUnavailable() from exc

    amount = 0
    if data.side == "buy":
        amount = _hold_cents(
            type_=data.type,
            qty=data.qty,
            notional=data.notional,
            limit_price=data.limit_price,
            stop_price=data.stop_price,
            ask=quote.ask,
            buffer_bps=buffer_bps,
        )
        if amount < 100 and (data.notional is not None or (data.qty or 0) % 1 != 0):
            raise InvalidOrder("Fractional buys are at least $1.00", code="BELOW_MINIMUM")
    now = utcnow()
    order = BrokerageOrder(
        id=uuid.uuid4(),
        user_id=user_id,
        client_order_id=key,
        request_hash=digest,
        broker_account_id=account.broker_account_id,
        symbol=symbol,
        asset_class=asset.asset_class,
        side=data.side,
        type=data.type,
        time_in_force=data.time_in_force,
        qty=data.qty,
        notional_cents=data.notional,
        limit_price=data.limit_price,
        stop_price=data.stop_price,
        status="pending_new",
        filled_qty=Decimal(0),
        broker_filled_qty=Decimal(0),
        filled_cents=0,
        hold_cents=amount,
        hold_seq=0,
        journaled_cents=amount,
        settled=False,
        created_at=now,
        updated_at=now,
    )
    repo.add(session, order)
    await repo.flush(session)
    if data.side == "buy":
        await kyc.consume_limit(
            session=session,
            user_id=user_id,
            action="trade",
            amount_cents=amount,
            reference=f"brokerage:{order.id}",
        )
        await accounts.queue_journal(
            session=session,
            key=f"order:{order.id}:fund",
            user_id=user_id,
            direction="to_customer",
            amount_cents=amount,
            new_key=True,
        )
        # the hold last: it locks the omnibus account (every order's) until the commit next
        await ledger.transfer(
            session=session,
            idempotency_key=hold_key(order),
            kind="brokerage.hold",
            legs=[
                ledger.Leg(ledger.user_account(user_id, "cash"), -amount),
                ledger.Leg(ledger.system_account(OMNIBUS), amount),
            ],
            reference=f"brokerage_order:{order.id}",
            pending=True,
        )
    else:
        position = await repo.position(session, user_id, symbol)
        have = (position.qty if position else Decimal(0)) - await repo.sell_reserved(
            session, user_id, symbol
        )
        have += order.qty or 0  # sell_reserved counted this order already (flushed)
        wanted = data.qty
        if wanted is None and data.notional is not None:
            wanted = Decimal(data.notional) / 100 / quote.bid
        if wanted is None or wanted > have:
            raise InsufficientShares(details={"available": str(max(have, Decimal(0)))})
    await repo.flush(session)
    return Intake(order_read(order), False, order.id)


async def send(*, session: AsyncSession, broker: Broker, order_id: uuid.UUID) -> OrderRead:
    """Fund the broker account and submit a prepared order (after its intake committed).

    A broker rejection rejects the order and releases its hold; no answer leaves it
    `pending_new` for reconciliation, which finds it by client_order_id (our order id)."""
    order = await repo.order(session, order_id, lock=True)
    if order is None:
        raise OrderNotFound()
    if order.status != "pending_new" or order.broker_order_id is not None:
        return order_read(order)
    fund = await repo.journal(session, f"order:{order.id}:fund", lock=True)
    if fund is not None and fund.status == "pending":
        try:
            await accounts.execute_journal(
                session=session,
                broker=broker,
                journal=fund,
                first=True,
                broker_account_id=order.broker_account_id,
            )
        except BrokerError:
            return order_read(order)  # reconciliation executes the journal and submits
        if fund.status == "failed":
            await reject(session=session, order=order, reason="funding journal failed")
            return order_read(order)
    try:
        snap = await broker.submit_order(
            account_id=order.broker_account_id,
            request=OrderRequest(
                symbol=order.symbol,
                side=order.side,
                type=order.type,
                time_in_force=order.time_in_force,
                client_order_id=str(order.id),
                qty=order.qty,
                notional=dollars(order.notional_cents) if order.notional_cents else None,
                limit_price=order.limit_price,
                stop_price=order.stop_price,
            ),
        )
    except BrokerRejected as exc:
        await reject(session=session, order=order, reason=exc.message)
        return order_read(order)
    except BrokerError:
        return order_read(order)
    await converge(session=session, order=order, snap=snap, source="api", apply_fills=False)
    return order_read(order)


# --- cancel and replace -------------------------------------------------------------------------


async def own_order(
    *, session: AsyncSession, user_id: uuid.UUID, order_id: uuid.UUID, lock: bool = False
) -> BrokerageOrder:
    order = await repo.order(session, order_id, user_id=user_id, lock=lock)
    if order is None:
        raise OrderNotFound()
    return order


async def cancel(
    *, session: AsyncSession, broker: Broker, user_id: uuid.UUID, order_id: uuid.UUID
) -> OrderRead:
    order = await own_order(session=session, user_id=user_id, order_id=order_id, lock=True)
    if order.status in states.TERMINAL:
        raise OrderNotCancelable(details={"status": order.status})
    if order.broker_order_id is None:
        snap = await _lookup(broker, order)
        if snap is None:
            await reject(session=session, order=order, reason="canceled before reaching the broker")
            order.status = "canceled"
            return order_read(order)
        await converge(session=session, order=order, snap=snap, source="api", apply_fills=False)
    assert order.broker_order_id is not None
    try:
        await broker.cancel_order(
            account_id=order.broker_account_id, order_id=order.broker_order_id
        )
    except BrokerRejected as exc:
        raise OrderNotCancelable(exc.message) from exc
    except BrokerError as exc:
        raise BrokerageUnavailable() from exc
    try:
        snap = await broker.get_order(
            account_id=order.broker_account_id, order_id=order.broker_order_id
        )
    except BrokerError:
        return order_read(order)
    await converge(session=session, order=order, snap=snap, source="api", apply_fills=False)
    return order_read(order)


async def _lookup(broker: Broker, order: BrokerageOrder) -> BrokerOrder | None:
    try:
        return await broker.get_order_by_client_id(
            account_id=order.broker_account_id, client_order_id=str(order.id)
        )
    except BrokerError as exc:
        raise BrokerageUnavailable() from exc


async def prepare_replace(
    *,
    session: AsyncSession,
    broker: Broker,
    user_id: uuid.UUID,
    order_id: uuid.UUID,
    data: OrderReplace,
    idempotency_key: str | None,
    buffer_bps: int,
) -> Intake:
    """Record the replacement order (its own hold and journal); the caller commits, then
    calls `send_replace`. The old order keeps its hold until the broker reports it replaced."""
    old = await own_order(session=session, user_id=user_id, order_id=order_id, lock=True)
    key = (
        data.client_order_id or (idempotency_key or "").strip() or f"{old.client_order_id}:replace"
    )
    found = await repo.order_by_client_id(session, user_id, key)
    if found is not None and found.replaces_id == old.id:
        return Intake(order_read(found), True, found.id)
    if old.status in states.TERMINAL or old.broker_order_id is None:
        raise OrderNotReplaceable(details={"status": old.status})
    if old.notional_cents is not None:
        raise OrderNotReplaceable("Notional orders cannot be replaced")
    assert old.qty is not None
    qty = data.qty if data.qty is not None else old.qty - old.filled_qty
    create = OrderCreate(
        symbol=old.symbol,
        side="buy" if old.side == "buy" else "sell",
        type=old.type,
        time_in_force=data.time_in_force or old.time_in_force,
        qty=qty,
        limit_price=data.limit_price if data.limit_price is not None else old.limit_price,
        stop_price=data.stop_price if data.stop_price is not None else old.stop_price,
        client_order_id=key,
    )
    if old.type == "market" and (data.limit_price or data.stop_price):
        raise PriceNotAllowed()
    intake = (
        await prepare(
            session=session,
            broker=broker,
            user_id=user_id,
            data=create,
            idempotency_key=None,
            buffer_bps=buffer_bps,
        )
        if old.side == "buy"
        else await _prepare_sell_replace(session, broker, old, create)
    )
    new = await repo.order(session, intake.order_id)
    assert new is not None
    new.replaces_id = old.id
    await repo.flush(session)
    return Intake(order_read(new), intake.replayed, new.id)


async def _prepare_sell_replace(
    session: AsyncSession, broker: Broker, old: BrokerageOrder, create: OrderCreate
) -> Intake:
    # The old sell's reservation moves to the new one: check against position minus the
    # other open sells (the old one excluded).
    assert old.qty is not None
    old_qty, old.qty = old.qty, old.filled_qty
    try:
        return await prepare(
            session=session,
            broker=broker,
            user_id=old.user_id,
            data=create,
            idempotency_key=None,
            buffer_bps=0,
        )
    finally:
        old.qty = old_qty


async def send_replace(
    *, session: AsyncSession, broker: Broker, old_id: uuid.UUID, new_id: uuid.UUID
) -> OrderRead:
    old = await repo.order(session, old_id, lock=True)
    new = await repo.order(session, new_id, lock=True)
    if old is None or new is None:
        raise OrderNotFound()
    if new.broker_order_id is not None or new.status != "pending_new":
        return order_read(new)
    fund = await repo.journal(session, f"order:{new.id}:fund", lock=True)
    if fund is not None and fund.status == "pending":
        try:
            await accounts.execute_journal(session=session, broker=broker, journal=fund, first=True)
        except BrokerError as exc:
            await reject(session=session, order=new, reason="broker unavailable")
            raise BrokerageUnavailable() from exc
    assert old.broker_order_id is not None
    try:
        snap = await broker.replace_order(
            account_id=old.broker_account_id,
            order_id=old.broker_order_id,
            request=ReplaceRequest(
                client_order_id=str(new.id),
                qty=new.qty,
                limit_price=new.limit_price if new.limit_price != old.limit_price else None,
                stop_price=new.stop_price if new.stop_price != old.stop_price else None,
                time_in_force=new.time_in_force if new.time_in_force != old.time_in_force else None,
            ),
        )
    except BrokerRejected as exc:
        await reject(session=session, order=new, reason=exc.message)
        return order_read(new)
    except BrokerError as exc:
        await reject(session=session, order=new, reason="broker unavailable")
        raise BrokerageUnavailable() from exc
    old.replaced_by_id = new.id
    await converge(session=session, order=new, snap=snap, source="api", apply_fills=False)
    try:
        old_snap = await broker.get_order(
            account_id=old.broker_account_id, order_id=old.broker_order_id
        )
    except BrokerError:
        return order_read(new)
    await converge(session=session, order=old, snap=old_snap, source="api", apply_fills=False)
    return order_read(new)
