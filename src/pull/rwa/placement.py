"""Placing limit orders on an asset's book, one or many in one transaction (group commit).

`place_orders` takes the asset's row lock once and places a sequence of orders exactly as
placing them one after another would (the same matching, holds, fills, releases, cost bases
and trades, in the same order), with a fixed number of statements per call instead of per
order: lock the asset and draw the orders' sequence numbers (1), the resting orders the batch
can reach, locked (1 per side), the cost-basis inputs (2, only when something fills), every
hold, fill and release in one ledger round trip (1), the cost bases (1), and the rows (a
flush: the new orders, the changed makers, the trades). The matching itself is the exchange's
engine (`pull.exchange.engine.match`), run per order against the book kept in memory for the
batch (trading.py says how an RWA book maps onto it).

Why the batch sees every order sequential placements would: buys take the best asks first,
so the resting asks a batch's buys reach are a prefix, in price-time order, of those priced
at or below the highest buy limit, no longer than the batch's total buy quantity; that prefix
is what `lock_crossing` loads (the same for sells). Orders of the batch that rest join the
in-memory book for the orders after them.

A batch is all or nothing: the first refusal (INSUFFICIENT_FUNDS / INSUFFICIENT_SHARES,
TRADING_HALTED) raises and the caller's transaction rolls back; the group-commit route then
places each order of the batch on its own (`order_batcher`).
"""

from __future__ import annotations

import bisect
import datetime as dt
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange.engine import BookOrder, EngineError, Incoming, PositionState, match
from pull.kit.db import utcnow
from pull.kyc import service as kyc
from pull.ledger import service as ledger
from pull.rwa import repository as repo
from pull.rwa.assets import shares_account
from pull.rwa.errors import AssetNotFound, InvalidState
from pull.rwa.models import RwaOrder, RwaTrade
from pull.rwa.repository import orders as order_repo
from pull.rwa.repository import positions as position_repo
from pull.rwa.schemas import OrderRead
from pull.rwa.trading import (
    InsufficientShares,
    MarketClosed,
    TradingHalted,
    market_open,
    order_escrow,
    order_read,
    release_spec,
)


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """One limit order to place (the caller checked the account and the KYC tier)."""

    user_id: uuid.UUID
    side: str  # buy | sell
    price_cents: int
    quantity: int
    time_in_force: str = "gtc"  # gtc | ioc


def _key(o: RwaOrder) -> tuple[int, int]:
    """Priority on its side, best first: highest bid / lowest ask, then time."""
    return (-o.price_cents if o.side == "buy" else o.price_cents, o.seq)


class _Book:
    """The resting orders a batch can reach, per side, best first."""

    def __init__(self) -> None:
        self.sides: dict[str, list[tuple[tuple[int, int], RwaOrder]]] = {"buy": [], "sell": []}

    def load(self, orders: Sequence[RwaOrder]) -> None:
        for o in orders:
            self.add(o)

    def add(self, o: RwaOrder) -> None:
        bisect.insort(self.sides[o.side], (_key(o), o), key=lambda e: e[0])

    def window(self, side: str, limit_price: int, quantity: int) -> list[RwaOrder]:
        """What `lock_crossing` would choose: resting orders of `side` crossing the limit, best
        first, while the shares before each are fewer than `quantity`."""
        out: list[RwaOrder] = []
        before = 0
        for _, o in self.sides[side]:
            if o.status != "resting" or o.remaining == 0:
                continue
            if (o.price_cents > limit_price) if side == "sell" else (o.price_cents < limit_price):
                break
            if before >= quantity:
                break
            out.append(o)
            before += o.remaining
        return out

    def prune(self, side: str) -> None:
        self.sides[side] = [e for e in self.sides[side] if e[1].status == "resting"]


def _hold_spec(order: RwaOrder, currency: str) -> ledger.TransferSpec:
    if order.side == "buy":
        amount = order.quantity * order.price_cents
        legs = [
            ledger.Leg(ledger.user_account(order.user_id, "cash"), -amount),
            ledger.Leg(ledger.user_account(order.user_id, "held"), amount),
        ]
    else:
        legs = [
            ledger.Leg(shares_account(order.user_id, currency), -order.quantity),
            ledger.Leg(order_escrow(currency), order.quantity),
        ]
    return ledger.TransferSpec(
        idempotency_key=f"rwa:order:{order.id}:hold",
        kind="rwa_order_hold",
        legs=legs,
        reference=f"rwa_order:{order.id}",
    )


def _fill_spec(
    asset_id: uuid.UUID, currency: str, buy: RwaOrder, sell: RwaOrder, qty: int, price: int
) -> ledger.TransferSpec:
    return ledger.TransferSpec(
        idempotency_key=f"rwa:fill:{buy.id}:{sell.id}",
        kind="rwa_trade",
        legs=[
            ledger.Leg(ledger.user_account(buy.user_id, "held"), -qty * buy.price_cents),
            ledger.Leg(ledger.user_account(buy.user_id, "cash"), qty * (buy.price_cents - price)),
            ledger.Leg(ledger.user_account(sell.user_id, "cash"), qty * price),
            ledger.Leg(order_escrow(currency), -qty),
            ledger.Leg(shares_account(buy.user_id, currency), qty),
        ],
        reference=f"rwa_asset:{asset_id}",
        metadata={"price_cents": price, "quantity": qty},
    )


def _match(
    order: RwaOrder, book: _Book, now: dt.datetime
) -> tuple[list[tuple[RwaOrder, int, int]], list[RwaOrder]]:
    """Match one order against the in-memory book with the exchange's engine and apply the
    result to the order objects: (maker, shares, price) per execution, and the makers the
    engine canceled (what they hold goes back)."""
    opposite = "sell" if order.side == "buy" else "buy"
    makers = book.window(opposite, order.price_cents, order.remaining)
    by_id: dict[Hashable, RwaOrder] = {m.id: m for m in makers}
    positions: dict[Hashable, PositionState] = {}
    for m in makers:
        if m.side == "sell":
            positions.setdefault(m.user_id, PositionState()).position += m.remaining
    if order.side == "sell":
        positions.setdefault(order.user_id, PositionState()).position += order.quantity
    try:
        result = match(
            Incoming(
                id=order.id,
                user_id=order.user_id,
                side="yes",
                action="buy" if order.side == "buy" else "sell",
                yes_price=order.price_cents,
                count=order.quantity,
                seq=order.seq,
                time_in_force="immediate_or_cancel"
                if order.time_in_force == "ioc"
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
    fills: list[tuple[RwaOrder, int, int]] = []
    for e in result.executions:
        maker = by_id[e.maker_order_id]
        fills.append((maker, e.count, e.yes_price))
        for o in (order, maker):
            o.remaining -= e.count
            o.filled_cents += e.count * e.yes_price
            o.updated_at = now
        if maker.remaining == 0:
            maker.status = "executed"
    canceled: list[RwaOrder] = []
    for upd in result.makers.values():
        maker = by_id[upd.order.id]
        if upd.status == "canceled" and maker.status == "resting":
            canceled.append(maker)
            maker.status = "canceled"
            maker.cancel_reason = upd.cancel_reason
    if order.remaining == 0:
        order.status = "executed"
    elif result.status == "canceled":
        order.status = "canceled"
        order.cancel_reason = result.cancel_reason
    return fills, canceled


async def place_orders(
    *,
    session: AsyncSession,
    asset_id: uuid.UUID,
    orders: Sequence[OrderSpec],
    trading_hours: str = "",
    now: dt.datetime | None = None,
) -> list[OrderRead]:
    """Place `orders` on one asset's book in this order, in the caller's transaction (see
    the module docstring); their reads in the same order.
    409 TRADING_HALTED / MARKET_CLOSED / INSUFFICIENT_FUNDS / INSUFFICIENT_SHARES."""
    now = now or utcnow()
    if not market_open(trading_hours, now):
        raise MarketClosed(details={"trading_hours": trading_hours})
    # The book: from here to the commit, one placement (or batch) at a time per asset.
    locked = await order_repo.lock_asset_for_orders(session, asset_id, len(orders))
    if locked is None:
        raise AssetNotFound()
    state, currency, seqs = locked
    if state != "trading":
        raise TradingHalted(details={"state": state})
    book = _Book()
    buys = [o for o in orders if o.side == "buy"]
    sells = [o for o in orders if o.side == "sell"]
    if buys:
        book.load(
            await order_repo.lock_crossing(
                session,
                asset_id,
                side="sell",
                limit_price=max(o.price_cents for o in buys),
                quantity=sum(o.quantity for o in buys),
            )
        )
    if sells:
        book.load(
            await order_repo.lock_crossing(
                session,
                asset_id,
                side="buy",
                limit_price=min(o.price_cents for o in sells),
                quantity=sum(o.quantity for o in sells),
            )
        )
    loaded = [o for side in book.sides.values() for _, o in side]
    # The cost-basis inputs, before anything of the batch is written or changed: what each
    # user that can trade owns (its shares account and its resting sells) and its basis.
    users = sorted({*(o.user_id for o in orders), *(o.user_id for o in loaded)})
    basis_rest: dict[uuid.UUID, tuple[int, int]] = {}
    accounts: dict[uuid.UUID, int] = {}
    if loaded or (buys and sells):  # something can fill
        basis_rest = await order_repo.basis_and_open_sells(session, asset_id, users)
        accounts = await ledger.kind_balances(
            session=session,
            owners=users,
            kind=shares_account(users[0], currency).kind,
            currency=currency,
        )

    placed: list[RwaOrder] = []
    transfers: list[ledger.TransferSpec] = []
    trades: list[tuple[RwaOrder, RwaOrder, int, int, str]] = []
    for spec, seq in zip(orders, seqs, strict=True):
        order = RwaOrder(
            id=uuid.uuid4(),
            seq=seq,
            asset_id=asset_id,
            user_id=spec.user_id,
            side=spec.side,
            price_cents=spec.price_cents,
            quantity=spec.quantity,
            remaining=spec.quantity,
            filled_cents=0,
            time_in_force=spec.time_in_force,
            status="resting",
            cancel_reason=None,
            created_at=now,
            updated_at=now,
        )
        placed.append(order)
        transfers.append(_hold_spec(order, currency))
        fills, canceled = _match(order, book, now)
        for maker, qty, price in fills:
            buy, sell = (order, maker) if order.side == "buy" else (maker, order)
            transfers.append(_fill_spec(asset_id, currency, buy, sell, qty, price))
            trades.append((buy, sell, qty, price, order.side))
        for maker in canceled:
            transfers.append(release_spec(maker, currency))
        if order.status == "canceled":
            transfers.append(release_spec(order, currency))
        elif order.status == "resting":
            book.add(order)
        if fills:
            book.prune("sell" if order.side == "buy" else "buy")

    try:
        await ledger.transfer_many(session=session, transfers=transfers)
    except ledger.InsufficientFunds as exc:
        if (exc.details or {}).get("currency") == currency:
            raise InsufficientShares(details={"asset_id": str(asset_id)}) from exc
        raise

    if trades:
        # Cost bases, fill by fill: the buyer adds what it paid; the seller removes the sold
        # fraction of its basis (the basis over the shares it owned before that fill).
        basis = {u: basis_rest[u][0] for u in users}
        owned = {u: accounts.get(u, 0) + basis_rest[u][1] for u in users}
        touched: set[uuid.UUID] = set()
        for buy, sell, qty, price, _ in trades:
            if owned[sell.user_id] > 0:
                taken = basis[sell.user_id] * qty // owned[sell.user_id]
                basis[sell.user_id] = max(0, basis[sell.user_id] - taken)
            owned[sell.user_id] -= qty
            owned[buy.user_id] += qty
            basis[buy.user_id] = max(0, basis[buy.user_id] + qty * price)
            touched.update((buy.user_id, sell.user_id))
        await position_repo.set_costs(session, asset_id, {u: basis[u] for u in sorted(touched)})

    for order in placed:
        repo.add(session, order)
    for buy, sell, qty, price, taker_side in trades:
        repo.add(
            session,
            RwaTrade(
                asset_id=asset_id,
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
    await session.flush()
    return [order_read(o) for o in placed]


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
    A batch of one (`place_orders`), after the KYC tier (read before the asset's lock).
    409 TRADING_HALTED / MARKET_CLOSED / INSUFFICIENT_FUNDS / INSUFFICIENT_SHARES,
    403 KYC_REQUIRED."""
    now = now or utcnow()
    await check_trader(session=session, user_id=user_id, now=now)
    spec = OrderSpec(user_id, side, price_cents, quantity, time_in_force)
    placed = await place_orders(
        session=session, asset_id=asset_id, orders=[spec], trading_hours=trading_hours, now=now
    )
    return placed[0]


async def check_trader(
    *, session: AsyncSession, user_id: uuid.UUID, now: dt.datetime | None = None
) -> None:
    """403 KYC_REQUIRED below the basic tier (trading needs it)."""
    tier = await kyc.get_tier(session=session, user_id=user_id, now=now or utcnow())
    if tier.rank < kyc.Tier.basic.rank:
        raise kyc.KycRequired(kyc.Tier.basic.value)
