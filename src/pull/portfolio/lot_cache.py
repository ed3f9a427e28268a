"""Each user's replayed FIFO lots, kept in the API process's memory under a version of the
rows they are built from, so a repeat `GET /api/v1/portfolio` skips reading and replaying
every fill (docs/portfolio.md, "Performance").

The version is read through the other modules' services, before the rows: the exchange's
fills and settlements, RWA's issued subscriptions and secondary trades, the ledger's buyout
distributions on the user's share accounts, and the brokerage's executions. Every one of those
sources is insert-only or moves one way only (a brokerage bust or correction is a row of its
own; a subscription becomes `issued` once and never leaves it), so a count of the user's rows
changes with every change the lots could see, even one committed under a lower id. A version
read before the rows can only be older than the rows, never newer: lots stored under it are
at least as new as it says, and a later request with a newer version replays again. The cache
never serves stale lots.

The open lots are kept as tuples of plain values (datetimes, `Decimal`s, ints, strs), which
the cyclic garbage collector stops tracking, so a full collection walks one object per cached
instrument rather than every lot and its parts.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from pull.brokerage import service as brokerage
from pull.exchange import holdings as exchange
from pull.ledger import service as ledger
from pull.portfolio import sources
from pull.portfolio.lots import ZERO, LotEvent, replay
from pull.rwa import service as rwa

# One open lot: (acquired, quantity, quantity as an int when whole else None, its JSON text,
# cost in cents)
Lot = tuple[dt.datetime, Decimal, int | None, str, int]
_FOUR = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Book:
    """One instrument's replayed FIFO state, what the view needs of it: realized P&L, the
    open lots and their sums (computed once, when the lots are replayed)."""

    realized: int
    lots: tuple[Lot, ...]
    quantity: Decimal
    quantity_text: str
    whole: int | None  # the quantity when every open lot's quantity is whole
    cost: int
    average_cost: str | None


@dataclass(frozen=True, slots=True)
class UserLots:
    """A user's books per source: (ticker, side) of contracts, share currency, symbol."""

    predictions: Mapping[tuple[str, str], Book]
    rwa: Mapping[str, Book]
    stocks: Mapping[str, Book]
    # the holdings valued at the last marks seen, by source and key (service._valued)
    valued: dict[Any, tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=dict)

    @property
    def weight(self) -> int:
        return sum(
            2 + 2 * len(b.lots)  # the book, its lots and (when valued) their data
            for part in (self.predictions, self.rwa, self.stocks)
            for b in part.values()
        )


def book_of(events: Iterable[LotEvent]) -> Book:
    b = replay(events)
    lots: list[Lot] = []
    quantity = ZERO
    cost = 0
    whole: int | None = 0
    for lot in b.open:
        q = int(lot.quantity)
        qi = q if q == lot.quantity else None
        lots.append((lot.acquired, lot.quantity, qi, str(lot.quantity), lot.cost))
        quantity += lot.quantity
        cost += lot.cost
        whole = None if whole is None or qi is None else whole + qi
    average = str((Decimal(cost) / quantity).quantize(_FOUR)) if quantity else None
    return Book(b.realized, tuple(lots), quantity, str(quantity), whole, cost, average)


K = TypeVar("K", bound=Hashable)


def _books(events: Mapping[K, list[LotEvent]]) -> dict[K, Book]:
    return {key: book_of(evs) for key, evs in events.items()}


Version = tuple[tuple[int, ...], ...]


async def version(*, session: AsyncSession, user_id: uuid.UUID) -> Version:
    """What the user's lots are built from, as counts and top ids (cheap index reads)."""
    return (
        await exchange.lots_version(session=session, user_id=user_id),
        await rwa.lots_version(session=session, user_id=user_id),
        await ledger.entries_version(
            session=session,
            user_id=user_id,
            account_kind="shares",
            transfer_kind=sources.DISTRIBUTION,
        ),
        await brokerage.lots_version(session=session, user_id=user_id),
    )


# At most this many lots and instruments across all cached users (a 1,000-holding customer
# weighs ~4,000); the least recently used users go first
MAX_WEIGHT = 200_000
_cache: OrderedDict[uuid.UUID, tuple[Version, UserLots, int]] = OrderedDict()
_weight = 0


def clear() -> None:
    global _weight
    _cache.clear()
    _weight = 0


async def user_lots(*, session: AsyncSession, user_id: uuid.UUID) -> UserLots:
    """The user's books: from the cache when the version is unchanged, else replayed from
    every source (and kept)."""
    global _weight
    v = await version(session=session, user_id=user_id)
    hit = _cache.get(user_id)
    if hit is not None and hit[0] == v:
        _cache.move_to_end(user_id)
        return hit[1]
    found = UserLots(
        predictions=_books(await sources.prediction_events(session, user_id)),
        rwa=_books(await sources.rwa_events(session, user_id)),
        stocks=_books(await sources.stock_events(session, user_id)),
    )
    if hit is not None:
        del _cache[user_id]
        _weight -= hit[2]
    w = found.weight
    if w <= MAX_WEIGHT:
        _cache[user_id] = (v, found, w)
        _weight += w
        while _weight > MAX_WEIGHT:
            _, (_, _, gone) = _cache.popitem(last=False)
            _weight -= gone
    return found
