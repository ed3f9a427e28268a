"""The matching engine: plain, deterministic Python over one market's book. No I/O.

Every order is a bid or an ask in YES-price space:
    buy YES at p  = bid p          sell YES at p = ask p
    buy NO at q   = ask (100 - q)  sell NO at q  = bid (100 - q)
A bid meets an ask at the resting order's price (price-time priority). Positions are signed
(YES > 0, NO < 0). Whether a trade mints a pair, transfers contracts or burns a pair follows from
the two users' positions: a contract bought against a held opposite contract nets against it.

Money (integer cents), for one fill of c contracts at YES price P, per participant:
    opening contracts pay their own-side price (P for the bid side, 100 - P for the ask side)
    into the market escrow; closing contracts receive the other side's price (100 - P for a
    bid closing NO, P for an ask closing YES) from it.
So the escrow always holds 100 cents per open pair.

Collateral: a buy holds own price x count plus its maximum fee; a sell (of held contracts)
holds nothing and reserves the contracts it sells (`sell_reserved`), so a sell never opens a
position. A buy that nets against contracts reserved by the user's resting sells shrinks those
sells (newest first), so a sell never sells more than is held.

Fees: ceil(rate x C x P x (100 - P) / 1e6) cents with rate in basis points (700 = 0.07),
computed per order on the accumulated C x P x (100 - P) ("fee basis"), so that partial fills
never cost more in total than one fill of the same size.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

Side = Literal["yes", "no"]
Action = Literal["buy", "sell"]
TimeInForce = Literal["good_till_canceled", "immediate_or_cancel", "fill_or_kill"]
SelfTradePrevention = Literal["taker_at_cross", "maker"]

FEE_DENOMINATOR = 1_000_000  # basis points (1e4) x cents^2 -> cents (1e2 x 1e2 / 1e2)
MIN_PRICE = 1
MAX_PRICE = 99


class EngineError(Exception):
    """An order the engine refuses; `code` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def is_bid(side: Side, action: Action) -> bool:
    return (side == "yes") == (action == "buy")


def yes_price_of(side: Side, price: int) -> int:
    return price if side == "yes" else 100 - price


def own_price(bid: bool, yes_price: int) -> int:
    """What a contract opened on this side of the book costs: P for bids, 100 - P for asks."""
    return yes_price if bid else 100 - yes_price


def fee_total(rate_bps: int, basis: int) -> int:
    """ceil(rate x basis / 1e6) in integers."""
    return -((-rate_bps * basis) // FEE_DENOMINATOR)


def fee_basis(count: int, yes_price: int) -> int:
    return count * yes_price * (100 - yes_price)


def worst_fee_price(limit_own_price: int) -> int:
    """The price in 1..limit at which P x (100 - P) is largest."""
    return min(limit_own_price, 50)


def max_fee(rate_bps: int, count: int, limit_own_price: int) -> int:
    """The most `count` contracts can pay in fees at prices up to the limit."""
    m = worst_fee_price(limit_own_price)
    return fee_total(rate_bps, fee_basis(count, m))


def buy_hold(count: int, limit_own_price: int, maker_fee_bps: int) -> int:
    """Collateral of a resting buy: price x count plus the most its maker fills can cost."""
    return count * limit_own_price + max_fee(maker_fee_bps, count, limit_own_price)


def taker_fee_for(count: int, yes_price: int, rate_bps: int) -> int:
    """The fee of a single fill (Kalshi's formula): ceil(0.07 x C x P x (1 - P)) at 700 bps."""
    return fee_total(rate_bps, fee_basis(count, yes_price))


@dataclass
class PositionState:
    position: int = 0
    sell_reserved: int = 0
    cost_basis: int = 0
    realized_pnl: int = 0
    fees_paid: int = 0
    volume: int = 0


@dataclass
class BookOrder:
    """A resting order, as much as the engine needs of it."""

    id: Hashable
    user_id: Hashable
    side: Side
    action: Action
    yes_price: int
    seq: int
    remaining: int
    hold: int = 0
    reduce_only: bool = False
    expiration_ts: dt.datetime | None = None
    fill_count: int = 0
    maker_fee_basis: int = 0
    maker_fees: int = 0
    maker_fill_cost: int = 0

    @property
    def is_bid(self) -> bool:
        return is_bid(self.side, self.action)

    @property
    def limit_own_price(self) -> int:
        return own_price(self.is_bid, self.yes_price)


@dataclass
class Incoming:
    """An order arriving at the book (a new order, or an amended one re-entering)."""

    id: Hashable
    user_id: Hashable
    side: Side
    action: Action
    yes_price: int  # the limit in YES space (market orders: 99 for bids, 1 for asks)
    count: int  # contracts still to fill
    seq: int
    is_market: bool = False
    time_in_force: TimeInForce = "good_till_canceled"
    post_only: bool = False
    reduce_only: bool = False
    buy_max_cost: int | None = None
    self_trade_prevention: SelfTradePrevention = "taker_at_cross"
    expiration_ts: dt.datetime | None = None
    # accumulators carried by an amended order
    taker_fee_basis: int = 0
    taker_fees: int = 0

    @property
    def is_bid(self) -> bool:
        return is_bid(self.side, self.action)

    @property
    def limit_own_price(self) -> int:
        return own_price(self.is_bid, self.yes_price)


@dataclass(frozen=True)
class Execution:
    """One match: the taker against one resting order."""

    maker_order_id: Hashable
    maker_user_id: Hashable
    count: int
    yes_price: int
    taker_fee: int
    maker_fee: int
    # money of this fill (cents; escrow_in > 0 means paid into the market escrow)
    taker_cost: int  # own-side price x count: what the taker's contracts cost
    maker_cost: int


@dataclass
class MakerUpdate:
    order: BookOrder
    status: Literal["resting", "executed", "canceled"]
    cancel_reason: str | None = None
    # how much of the maker's hold went back to the user's cash (the rest paid the fills)
    hold_released: int = 0
    hold_spent: int = 0


@dataclass
class Money:
    """Per-user money of one placement, split by account."""

    cash: int = 0
    held: int = 0
    escrow: int = 0  # what this user moved into the escrow (negative: received from it)
    fee: int = 0


@dataclass
class MatchResult:
    status: Literal["resting", "executed", "canceled"]
    filled: int
    remaining: int
    cancel_reason: str | None
    executions: list[Execution] = field(default_factory=list)
    makers: dict[Hashable, MakerUpdate] = field(default_factory=dict)
    positions: dict[Hashable, PositionState] = field(default_factory=dict)
    money: dict[Hashable, Money] = field(default_factory=dict)
    # resting sells to shrink because their contracts were netted away: user -> contracts
    shrink_sells: dict[Hashable, int] = field(default_factory=dict)
    taker_fees: int = 0
    taker_fee_basis: int = 0
    taker_fill_cost: int = 0
    taker_hold: int = 0  # collateral held for the resting remainder
    escrow_delta: int = 0
    pairs_delta: int = 0
    # True when every candidate handed in was used up: the caller must hand in more
    candidates_exhausted: bool = False


def crosses(taker_bid: bool, taker_yes_price: int, maker_yes_price: int) -> bool:
    return maker_yes_price <= taker_yes_price if taker_bid else maker_yes_price >= taker_yes_price


def priority_key(order: BookOrder) -> tuple[int, int]:
    """Sort key of one side's resting orders, best first."""
    return (-order.yes_price if order.is_bid else order.yes_price, order.seq)


class _Ledger:
    """Positions and money of the users a placement touches (copy-on-write)."""

    def __init__(self, positions: Mapping[Hashable, PositionState]) -> None:
        self.src = positions
        self.positions: dict[Hashable, PositionState] = {}
        self.money: dict[Hashable, Money] = {}
        self.shrink: dict[Hashable, int] = {}
        self.pairs_delta = 0

    def pos(self, user: Hashable) -> PositionState:
        p = self.positions.get(user)
        if p is None:
            p = replace(self.src.get(user) or PositionState())
            self.positions[user] = p
        return p

    def cash(self, user: Hashable) -> Money:
        m = self.money.get(user)
        if m is None:
            m = self.money[user] = Money()
        return m

    def trade(self, user: Hashable, bid: bool, count: int, yes_price: int, reserved: bool) -> None:
        """Apply `count` contracts bought on the bid (YES) or ask (NO) side; netting against
        held opposite contracts happens here. `reserved`: a resting sell whose contracts were
        reserved for it."""
        p = self.pos(user)
        direction = 1 if bid else -1
        held_opposite = max(0, -p.position * direction)
        closing = min(count, held_opposite)
        opening = count - closing
        price_open = own_price(bid, yes_price)
        proceeds = closing * (100 - price_open)
        cost = opening * price_open
        if closing:
            held = abs(p.position)
            removed = p.cost_basis * closing // held
            p.cost_basis -= removed
            p.realized_pnl += proceeds - removed
            if not bid:
                self.pairs_delta -= closing  # YES contracts closed
            if reserved:
                p.sell_reserved = max(0, p.sell_reserved - closing)
            if p.sell_reserved > held - closing:
                # contracts reserved by resting sells were netted away: shrink those sells
                self.shrink[user] = p.sell_reserved - (held - closing)
                p.sell_reserved = held - closing
        p.position += direction * count
        if opening:
            p.cost_basis += cost
            if bid:
                self.pairs_delta += opening  # YES contracts opened
        p.volume += count
        self.cash(user).escrow += cost - proceeds


def _fillable(
    taker: Incoming,
    taker_pos: PositionState,
) -> int:
    """The most the taker may fill given reduce-only (a sell is validated at placement)."""
    if taker.reduce_only and taker.action == "buy":
        direction = 1 if taker.is_bid else -1
        return min(taker.count, max(0, -taker_pos.position * direction))
    return taker.count


def match(
    taker: Incoming,
    candidates: Iterable[BookOrder],
    positions: Mapping[Hashable, PositionState],
    *,
    taker_fee_bps: int,
    maker_fee_bps: int,
    now: dt.datetime,
) -> MatchResult:
    """Match `taker` against `candidates` (the opposite side, best first). Pure: inputs are
    not modified; the result says what changes.

    Raises EngineError("POST_ONLY_WOULD_CROSS") for a post-only order that would trade.
    """
    live = [o for o in candidates if crosses(taker.is_bid, taker.yes_price, o.yes_price)]
    if taker.post_only and any(o.expiration_ts is None or o.expiration_ts > now for o in live):
        raise EngineError("POST_ONLY_WOULD_CROSS", "A post-only order may not cross the book")

    led = _Ledger(positions)
    held: dict[Hashable, int] = {}  # change of each user's held balance
    makers: dict[Hashable, MakerUpdate] = {}
    executions: list[Execution] = []
    fok = taker.time_in_force == "fill_or_kill" or taker.buy_max_cost is not None
    limit_left = _fillable(taker, led.pos(taker.user_id))
    rem = taker.count
    stopped: str | None = "reduce_only" if limit_left < rem else None
    spent = 0
    t_basis, t_fees, t_cost_total = taker.taker_fee_basis, taker.taker_fees, 0
    processed = 0

    def cancel_maker(maker: BookOrder, reason: str) -> None:
        makers[maker.id] = MakerUpdate(replace(maker, hold=0), "canceled", reason, maker.hold)
        if maker.hold:
            held[maker.user_id] = held.get(maker.user_id, 0) - maker.hold

    for maker in live:
        if rem == 0 or limit_left == 0:
            break
        processed += 1
        if maker.expiration_ts is not None and maker.expiration_ts <= now:
            cancel_maker(maker, "expired")
            continue
        if maker.user_id == taker.user_id:
            if taker.self_trade_prevention == "maker":
                cancel_maker(maker, "self_trade")
                continue
            stopped = "self_trade"
            break
        m_rem = maker.remaining
        if maker.reduce_only and maker.action == "buy":
            mp = led.pos(maker.user_id)
            cap = max(0, -mp.position * (1 if maker.is_bid else -1))
            if cap == 0:
                cancel_maker(maker, "reduce_only")
                continue
            m_rem = min(m_rem, cap)
        elif maker.action == "sell":
            # a sell never sells more than is held (contracts may have been netted away)
            mp = led.pos(maker.user_id)
            cap = max(0, mp.position * (-1 if maker.is_bid else 1))
            if cap == 0:
                cancel_maker(maker, "position_closed")
                led.shrink.setdefault(maker.user_id, 0)
                continue
            m_rem = min(m_rem, cap)
        qty = min(rem, limit_left, m_rem)
        price = maker.yes_price
        if taker.buy_max_cost is not None:
            qty = _max_affordable(
                qty, price, taker, spent, t_basis, t_fees, taker_fee_bps, taker.buy_max_cost
            )
            if qty == 0:
                stopped = "buy_max_cost"
                break
        # fees through the per-order accumulators
        t_basis += fee_basis(qty, price)
        t_fee = fee_total(taker_fee_bps, t_basis) - t_fees
        t_fees += t_fee
        mo = replace(maker)
        mo.maker_fee_basis += fee_basis(qty, price)
        m_fee = fee_total(maker_fee_bps, mo.maker_fee_basis) - mo.maker_fees
        mo.maker_fees += m_fee
        t_cost = qty * own_price(taker.is_bid, price)
        m_cost = qty * own_price(mo.is_bid, price)
        spent += t_cost + t_fee
        t_cost_total += t_cost
        # positions and escrow (netting happens in trade())
        led.trade(taker.user_id, taker.is_bid, qty, price, reserved=False)
        led.trade(mo.user_id, mo.is_bid, qty, price, reserved=mo.action == "sell")
        led.cash(taker.user_id).fee += t_fee
        led.pos(taker.user_id).fees_paid += t_fee
        led.cash(mo.user_id).fee += m_fee
        led.pos(mo.user_id).fees_paid += m_fee
        # a buying maker pays from its hold; what the rest of the order needs stays held
        after = mo.remaining - qty
        if mo.action == "buy":
            budget = mo.hold - mo.remaining * mo.limit_own_price - m_fee
            assert budget >= 0, "maker fee budget overdrawn"
            required = after * mo.limit_own_price + min(
                budget, max_fee(maker_fee_bps, after, mo.limit_own_price)
            )
            held[mo.user_id] = held.get(mo.user_id, 0) - (mo.hold - required)
            mo.hold = required
        mo.remaining = after
        mo.fill_count += qty
        mo.maker_fill_cost += m_cost
        status: Literal["resting", "executed", "canceled"] = "executed" if after == 0 else "resting"
        reason = None
        if after and m_rem == qty and (mo.action == "sell" or mo.reduce_only):
            # a reduce-only or sell maker closed all it could: the rest would grow a position
            status, reason = "canceled", "reduce_only" if mo.action == "buy" else "position_closed"
            led.shrink.setdefault(mo.user_id, 0)
        if status != "resting" and mo.hold:
            held[mo.user_id] = held.get(mo.user_id, 0) - mo.hold
            mo.hold = 0
        makers[maker.id] = MakerUpdate(mo, status, reason)
        executions.append(
            Execution(maker.id, maker.user_id, qty, price, t_fee, m_fee, t_cost, m_cost)
        )
        rem -= qty
        limit_left -= qty
        if after and status == "resting" and rem:
            stopped = "buy_max_cost"  # only the cost budget leaves both sides unfilled
            break

    if fok and rem > 0:
        # all or nothing: only the cancels of expired makers stand
        killed = MatchResult(
            status="canceled",
            filled=0,
            remaining=taker.count,
            cancel_reason="fill_or_kill" if taker.buy_max_cost is None else "buy_max_cost",
            taker_fee_basis=taker.taker_fee_basis,
            taker_fees=taker.taker_fees,
        )
        for upd in makers.values():
            if upd.cancel_reason == "expired":
                killed.makers[upd.order.id] = upd
                m = killed.money.setdefault(upd.order.user_id, Money())
                m.held -= upd.hold_released
                m.cash += upd.hold_released
        return killed

    result = MatchResult(
        status="resting", filled=taker.count - rem, remaining=rem, cancel_reason=None
    )
    result.candidates_exhausted = (
        processed == len(live) and rem > 0 and limit_left > 0 and stopped is None
    )
    expired = taker.expiration_ts is not None and taker.expiration_ts <= now
    if rem == 0:
        result.status = "executed"
    elif stopped or taker.is_market or taker.time_in_force == "immediate_or_cancel" or expired:
        result.status = "canceled"
        result.cancel_reason = stopped or ("expired" if expired else "immediate_or_cancel")
    elif taker.action == "buy":
        result.taker_hold = buy_hold(rem, taker.limit_own_price, maker_fee_bps)
        held[taker.user_id] = held.get(taker.user_id, 0) + result.taker_hold
    else:
        led.pos(taker.user_id).sell_reserved += rem
    # cash is what is left: every user's cash + held change = -(escrow paid + fees)
    for user in set(led.money) | set(held):
        m = led.cash(user)
        m.held = held.get(user, 0)
        m.cash = -(m.escrow + m.fee) - m.held
    result.executions = executions
    result.makers = makers
    result.positions = led.positions
    result.money = led.money
    result.shrink_sells = led.shrink
    result.pairs_delta = led.pairs_delta
    result.escrow_delta = sum(m.escrow for m in led.money.values())
    result.taker_fees = t_fees
    result.taker_fee_basis = t_basis
    result.taker_fill_cost = t_cost_total
    return result


def _max_affordable(
    qty: int,
    price: int,
    taker: Incoming,
    spent: int,
    basis: int,
    fees: int,
    rate: int,
    budget: int,
) -> int:
    """The most contracts (<= qty) whose cost plus fee keeps the total within `budget`."""
    unit = own_price(taker.is_bid, price)
    lo, hi = 0, qty
    while lo < hi:
        mid = (lo + hi + 1) // 2
        fee = fee_total(rate, basis + fee_basis(mid, price)) - fees
        if spent + mid * unit + fee <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def decreased_hold(order: BookOrder, new_remaining: int, maker_fee_bps: int) -> int:
    """The hold of a resting buy cut to `new_remaining` contracts (never more than before)."""
    budget = order.hold - order.remaining * order.limit_own_price
    return new_remaining * order.limit_own_price + min(
        budget, max_fee(maker_fee_bps, new_remaining, order.limit_own_price)
    )
