"""An in-memory exchange over the matching engine: the reference model the tests pin.

It applies `match` results exactly as the database service does, with users' cash/held
balances, an escrow and fee revenue, so the matching semantics can be checked without I/O.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Hashable
from dataclasses import dataclass

from pull.exchange.engine import (
    MAX_PRICE,
    MIN_PRICE,
    Action,
    BookOrder,
    EngineError,
    Execution,
    Incoming,
    MatchResult,
    PositionState,
    SelfTradePrevention,
    Side,
    TimeInForce,
    decreased_hold,
    is_bid,
    match,
    priority_key,
    yes_price_of,
)


@dataclass
class Placed:
    order: BookOrder
    status: str
    filled: int
    result: MatchResult


class Book:
    """One market held in memory, with users' cash/held balances, an escrow and fee revenue.

    It applies `match` results exactly as the database service does; tests use it to pin the
    matching semantics without I/O.
    """

    def __init__(self, *, taker_fee_bps: int = 700, maker_fee_bps: int = 0) -> None:
        self.taker_fee_bps = taker_fee_bps
        self.maker_fee_bps = maker_fee_bps
        self.orders: dict[Hashable, BookOrder] = {}
        self.status: dict[Hashable, str] = {}
        self.positions: dict[Hashable, PositionState] = {}
        self.cash: dict[Hashable, int] = {}
        self.held: dict[Hashable, int] = {}
        self.escrow = 0
        self.fees = 0
        self.pairs = 0  # open interest as the match results report it
        self.seq = 0
        self.trades: list[Execution] = []
        self.now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)

    # -- helpers ---------------------------------------------------------------------------
    def deposit(self, user: Hashable, cents: int) -> None:
        self.cash[user] = self.cash.get(user, 0) + cents

    def position(self, user: Hashable) -> int:
        p = self.positions.get(user)
        return p.position if p else 0

    def resting(self, bid: bool | None = None) -> list[BookOrder]:
        out = [
            o
            for oid, o in self.orders.items()
            if self.status[oid] == "resting" and (bid is None or o.is_bid == bid)
        ]
        return sorted(out, key=priority_key)

    def best_bid(self) -> int | None:
        bids = self.resting(True)
        return bids[0].yes_price if bids else None

    def best_ask(self) -> int | None:
        asks = self.resting(False)
        return asks[0].yes_price if asks else None

    def open_interest(self) -> int:
        return sum(max(0, p.position) for p in self.positions.values())

    # -- orders ----------------------------------------------------------------------------
    def place(
        self,
        user: Hashable,
        side: Side,
        action: Action,
        count: int,
        price: int | None = None,
        *,
        is_market: bool = False,
        time_in_force: TimeInForce = "good_till_canceled",
        post_only: bool = False,
        reduce_only: bool = False,
        buy_max_cost: int | None = None,
        self_trade_prevention: SelfTradePrevention = "taker_at_cross",
        expiration_ts: dt.datetime | None = None,
        order_id: Hashable | None = None,
    ) -> Placed:
        bid = is_bid(side, action)
        if is_market:
            yes_price = 99 if bid else 1
        else:
            if price is None or not MIN_PRICE <= price <= MAX_PRICE:
                raise EngineError("INVALID_PRICE", "price must be 1 to 99 cents")
            yes_price = yes_price_of(side, price)
        if count < 1:
            raise EngineError("INVALID_COUNT", "count must be at least 1")
        pos = self.positions.get(user) or PositionState()
        if action == "sell":
            held_side = pos.position if side == "yes" else -pos.position
            if count > held_side - pos.sell_reserved:
                raise EngineError("INSUFFICIENT_POSITION", "You can only sell contracts you hold")
        self.seq += 1
        oid = order_id if order_id is not None else f"o{self.seq}"
        incoming = Incoming(
            id=oid,
            user_id=user,
            side=side,
            action=action,
            yes_price=yes_price,
            count=count,
            seq=self.seq,
            is_market=is_market,
            time_in_force=time_in_force,
            post_only=post_only,
            reduce_only=reduce_only,
            buy_max_cost=buy_max_cost,
            self_trade_prevention=self_trade_prevention,
            expiration_ts=expiration_ts,
        )
        return self._enter(incoming, fill_count=0)

    def _enter(self, incoming: Incoming, fill_count: int) -> Placed:
        result = match(
            incoming,
            self.resting(not incoming.is_bid),
            self.positions,
            taker_fee_bps=self.taker_fee_bps,
            maker_fee_bps=self.maker_fee_bps,
            now=self.now,
        )
        for user, m in result.money.items():
            if self.cash.get(user, 0) + m.cash < 0:
                raise EngineError("INSUFFICIENT_FUNDS", "Insufficient funds")
        self._apply(result)
        order = BookOrder(
            id=incoming.id,
            user_id=incoming.user_id,
            side=incoming.side,
            action=incoming.action,
            yes_price=incoming.yes_price,
            seq=incoming.seq,
            remaining=result.remaining if result.status == "resting" else 0,
            hold=result.taker_hold,
            reduce_only=incoming.reduce_only,
            expiration_ts=incoming.expiration_ts,
            fill_count=fill_count + result.filled,
        )
        self.orders[incoming.id] = order
        self.status[incoming.id] = result.status
        for user in result.shrink_sells:
            self._fit_sells(user)
        return Placed(order, result.status, result.filled, result)

    def _apply(self, result: MatchResult) -> None:
        self.pairs += result.pairs_delta
        for user, m in result.money.items():
            self.cash[user] = self.cash.get(user, 0) + m.cash
            self.held[user] = self.held.get(user, 0) + m.held
            self.escrow += m.escrow
            self.fees += m.fee
        for oid, upd in result.makers.items():
            self.orders[oid] = upd.order
            self.status[oid] = upd.status
            if upd.status != "resting":
                upd.order.remaining = 0
        for user, p in result.positions.items():
            self.positions[user] = p
        self.trades.extend(result.executions)

    def _fit_sells(self, user: Hashable) -> None:
        """Shrink the user's resting sells (newest first) to the contracts still held."""
        p = self.positions.get(user) or PositionState()
        sells = [o for o in self.resting() if o.user_id == user and o.action == "sell"]
        for side in ("yes", "no"):
            held = max(0, p.position if side == "yes" else -p.position)
            mine = sorted((o for o in sells if o.side == side), key=lambda o: -o.seq)
            excess = sum(o.remaining for o in mine) - held
            for o in mine:
                if excess <= 0:
                    break
                cut = min(excess, o.remaining)
                o.remaining -= cut
                excess -= cut
                if o.remaining == 0:
                    self.status[o.id] = "canceled"
        p.sell_reserved = sum(
            o.remaining for o in self.resting() if o.user_id == user and o.action == "sell"
        )

    def _release(self, order: BookOrder) -> None:
        if order.hold:
            self.held[order.user_id] -= order.hold
            self.cash[order.user_id] = self.cash.get(order.user_id, 0) + order.hold
            order.hold = 0
        if order.action == "sell":
            p = self.positions[order.user_id]
            p.sell_reserved -= order.remaining

    def cancel(self, order_id: Hashable) -> None:
        order = self.orders[order_id]
        if self.status[order_id] != "resting":
            raise EngineError("ORDER_NOT_RESTING", "Only a resting order can be canceled")
        self._release(order)
        order.remaining = 0
        self.status[order_id] = "canceled"

    def decrease(self, order_id: Hashable, *, reduce_to: int) -> None:
        order = self.orders[order_id]
        if self.status[order_id] != "resting":
            raise EngineError("ORDER_NOT_RESTING", "Only a resting order can be decreased")
        if reduce_to <= 0:
            self.cancel(order_id)
            return
        if reduce_to >= order.remaining:
            raise EngineError("INVALID_DECREASE", "A decrease must lower the remaining count")
        cut = order.remaining - reduce_to
        if order.action == "buy":
            required = decreased_hold(order, reduce_to, self.maker_fee_bps)
            self.held[order.user_id] -= order.hold - required
            self.cash[order.user_id] += order.hold - required
            order.hold = required
        else:
            self.positions[order.user_id].sell_reserved -= cut
        order.remaining = reduce_to

    def amend(self, order_id: Hashable, *, price: int, count: int) -> Placed:
        """New price (own side) and total count; queue priority kept only for a pure size cut.
        A refused amend changes nothing."""
        saved = copy.deepcopy(self.__dict__)
        try:
            return self._amend(order_id, price=price, count=count)
        except EngineError:
            self.__dict__.update(saved)
            raise

    def _amend(self, order_id: Hashable, *, price: int, count: int) -> Placed:
        order = self.orders[order_id]
        if self.status[order_id] != "resting":
            raise EngineError("ORDER_NOT_RESTING", "Only a resting order can be amended")
        new_yes = yes_price_of(order.side, price)
        new_remaining = count - order.fill_count
        if new_remaining < 1:
            raise EngineError("INVALID_AMEND", "count must exceed the filled count")
        if new_yes == order.yes_price and new_remaining <= order.remaining:
            if new_remaining < order.remaining:
                self.decrease(order_id, reduce_to=new_remaining)
            return Placed(order, "resting", 0, MatchResult("resting", 0, new_remaining, None))
        self._release(order)
        self.status[order_id] = "canceled"
        self.seq += 1
        incoming = Incoming(
            id=order_id,
            user_id=order.user_id,
            side=order.side,
            action=order.action,
            yes_price=new_yes,
            count=new_remaining,
            seq=self.seq,
            reduce_only=order.reduce_only,
            expiration_ts=order.expiration_ts,
        )
        if order.action == "sell":
            p = self.positions[order.user_id]
            held_side = p.position if order.side == "yes" else -p.position
            if new_remaining > held_side - p.sell_reserved:
                raise EngineError("INSUFFICIENT_POSITION", "You can only sell contracts you hold")
        return self._enter(incoming, fill_count=order.fill_count)

    def expire(self) -> int:
        n = 0
        for o in self.resting():
            if o.expiration_ts is not None and o.expiration_ts <= self.now:
                self.cancel(o.id)
                n += 1
        return n
