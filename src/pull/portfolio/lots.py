"""FIFO tax lots: pure functions, no I/O.

Every holding is replayed from its acquisitions and disposals, oldest first. A disposal closes
the oldest open lots first (FIFO, the IRS default for shares without a specific-lot election).
Amounts are integer cents; quantities are `Decimal` (fractional stock) or whole numbers
(contracts, RWA shares). When part of a lot is closed, the cost taken with it is rounded down
and the rest stays with the lot, so the cents of a lot always add up exactly.

Fees: a fee on an acquisition is part of the lot's cost; a fee on a disposal reduces its
proceeds (as Form 8949 reports them).
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal(0)
LONG_TERM = dt.timedelta(days=365)


@dataclass(frozen=True, slots=True)
class LotEvent:
    """One acquisition (`quantity` > 0) or disposal (`quantity` < 0) of one instrument.

    `cash` is the gross amount exchanged, in cents, always >= 0 (what was paid for an
    acquisition, what was received for a disposal); `fee` is charged on top of it."""

    at: dt.datetime
    quantity: Decimal
    cash: int
    fee: int = 0
    seq: int = 0  # ties at the same instant keep their source order


@dataclass(slots=True)
class OpenLot:
    acquired: dt.datetime
    quantity: Decimal
    cost: int


@dataclass(frozen=True, slots=True)
class ClosedLot:
    acquired: dt.datetime
    sold: dt.datetime
    quantity: Decimal
    proceeds: int
    cost: int

    @property
    def gain(self) -> int:
        return self.proceeds - self.cost

    @property
    def long_term(self) -> bool:
        """Held more than one year (IRS: the day after acquisition to the day of sale)."""
        return self.sold.date() - self.acquired.date() > LONG_TERM


@dataclass(slots=True)
class LotBook:
    """The FIFO state of one instrument after its events."""

    open: deque[OpenLot] = field(default_factory=deque)
    closed: list[ClosedLot] = field(default_factory=list)
    # disposals beyond what was held (history the source does not show): no cost known
    unmatched: Decimal = ZERO

    @property
    def quantity(self) -> Decimal:
        return sum((lot.quantity for lot in self.open), ZERO)

    @property
    def cost(self) -> int:
        return sum(lot.cost for lot in self.open)

    @property
    def realized(self) -> int:
        return sum(c.gain for c in self.closed)


def _part(amount: int, part: Decimal, whole: Decimal) -> int:
    """`amount x part / whole`, rounded down, exact when part == whole."""
    if part == whole:
        return amount
    return int(Decimal(amount) * part // whole)


def replay(events: Iterable[LotEvent]) -> LotBook:
    """Apply events oldest first (by time, then `seq`)."""
    book = LotBook()
    for ev in sorted(events, key=lambda e: (e.at, e.seq)):
        if ev.quantity > 0:
            book.open.append(OpenLot(ev.at, ev.quantity, ev.cash + ev.fee))
        elif ev.quantity < 0:
            _dispose(book, ev)
    return book


def _dispose(book: LotBook, ev: LotEvent) -> None:
    total = -ev.quantity
    net = ev.cash - ev.fee
    left = total
    taken_proceeds = 0
    while left > 0 and book.open:
        lot = book.open[0]
        q = min(left, lot.quantity)
        cost = _part(lot.cost, q, lot.quantity)
        left -= q
        # the last piece takes the remainder so the proceeds add up exactly
        proceeds = net - taken_proceeds if left == 0 else _part(net, q, total)
        taken_proceeds += proceeds
        book.closed.append(ClosedLot(lot.acquired, ev.at, q, proceeds, cost))
        lot.quantity -= q
        lot.cost -= cost
        if lot.quantity == 0:
            book.open.popleft()
    if left > 0:
        book.unmatched += left
        book.closed.append(ClosedLot(ev.at, ev.at, left, net - taken_proceeds, 0))


def average_cost(book: LotBook) -> Decimal | None:
    """Cents per unit over the open lots (what brokerages show next to the lots)."""
    q = book.quantity
    return None if q == 0 else (Decimal(book.cost) / q).quantize(Decimal("0.0001"))


def day_change(
    book: LotBook, *, mark: Decimal, previous_close: Decimal | None, day_start: dt.datetime
) -> int:
    """Today's change of the open lots: from the previous close for lots held before today,
    from their cost for lots bought today (the brokerage convention)."""
    change = Decimal(0)
    for lot in book.open:
        if lot.acquired < day_start and previous_close is not None:
            change += (mark - previous_close) * lot.quantity
        elif lot.acquired >= day_start:
            change += mark * lot.quantity - lot.cost
    return int(change.to_integral_value())
