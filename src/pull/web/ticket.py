"""What an order will cost before it is sent: the order ticket's arithmetic.

Pure functions over the order book the API returns (`yes` and `no` bids, best first) and the
fee rule of docs/exchange.md: one order pays ceil(bps * sum(C * P * (100 - P)) / 1,000,000)
cents over its fills, P the YES price of each fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FEE_DENOMINATOR = 1_000_000


def fee(bps: int, basis: int) -> int:
    return -((-bps * basis) // FEE_DENOMINATOR)


@dataclass(frozen=True)
class Estimate:
    count: int
    filled: int  # contracts that trade at once, against the book
    fill_cost: int  # cents paid (buys) or received (sells) for them, fees apart
    taker_fee: int
    resting: int  # what a limit order leaves on the book
    resting_cost: int  # cents held for the resting part (buys), fees apart
    maker_fee_max: int  # the most the resting part can pay in maker fees
    payout: int  # cents paid out if this side wins, for every contract bought (buys)
    average_price: int | None  # cents per contract of the immediate part, rounded

    @property
    def total(self) -> int:
        """What a buy can cost at most, fees included; what a sell brings in, net of fees."""
        if self.payout:
            return self.fill_cost + self.taker_fee + self.resting_cost + self.maker_fee_max
        return self.fill_cost - self.taker_fee

    @property
    def profit_if_win(self) -> int:
        return self.payout - self.total if self.payout else 0


def opposite_levels(book: dict[str, Any], side: str, action: str) -> list[tuple[int, int]]:
    """The levels this order trades against, as (own-side price, count), best first.

    Buying YES takes NO bids (a NO bid at q is a YES ask at 100 - q); selling YES hits YES bids.
    """
    yes = [(int(p), int(c)) for p, c in book.get("yes", [])]
    no = [(int(p), int(c)) for p, c in book.get("no", [])]
    if action == "buy":
        other = no if side == "yes" else yes
        return [(100 - p, c) for p, c in other]
    return yes if side == "yes" else no


def estimate(
    book: dict[str, Any],
    *,
    side: str,
    action: str,
    count: int,
    limit: int | None,
    taker_fee_bps: int,
    maker_fee_bps: int = 0,
) -> Estimate:
    """`limit` is the own-side price in cents (None: a quick order that sweeps the book)."""
    if count <= 0:
        return Estimate(count, 0, 0, 0, 0, 0, 0, 0, None)
    left, filled, cost, basis = count, 0, 0, 0
    for price, size in opposite_levels(book, side, action):
        if left == 0:
            break
        if limit is not None and (price > limit if action == "buy" else price < limit):
            break
        take = min(left, size)
        filled += take
        cost += take * price
        yes_price = price if side == "yes" else 100 - price
        basis += take * yes_price * (100 - yes_price)
        left -= take
    resting = left if limit is not None else 0
    resting_cost = resting * limit if (limit is not None and action == "buy") else 0
    worst = min(limit, 50) if limit is not None else 50
    maker_max = fee(maker_fee_bps, resting * worst * (100 - worst)) if resting else 0
    average = round(cost / filled) if filled else None
    payout = (filled + resting) * 100 if action == "buy" else 0
    return Estimate(
        count=count,
        filled=filled,
        fill_cost=cost,
        taker_fee=fee(taker_fee_bps, basis),
        resting=resting,
        resting_cost=resting_cost,
        maker_fee_max=maker_max,
        payout=payout,
        average_price=average,
    )
