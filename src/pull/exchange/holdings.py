"""The exchange's reads for the portfolio (part of the exchange's public API, beside
`service`): a user's fills and settlements (to build tax lots), positions of many users and
the marks of markets. Kept out of `service.py`, which is being split for speed."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import holdings_repository as repo


@dataclass(frozen=True, slots=True)
class FillRow:
    id: int
    ticker: str
    side: str  # yes | no
    action: str  # buy | sell
    count: int
    yes_price: int
    fee: int
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class SettlementRow:
    ticker: str
    result: str  # yes | no | void
    yes_count: int
    no_count: int
    cost_basis: int
    revenue: int
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class PositionRow:
    user_id: uuid.UUID
    ticker: str
    position: int  # YES > 0, NO < 0
    cost_basis: int
    realized_pnl: int
    fees_paid: int


@dataclass(frozen=True, slots=True)
class MarketMark:
    ticker: str
    title: str
    status: str
    result: str | None
    yes_bid: int | None
    yes_ask: int | None
    last_price: int | None
    previous_close: int | None

    def yes_mark(self) -> tuple[int | None, str]:
        """The YES price a contract is valued at, and why (docs/portfolio.md, marks):
        a settled market's payout; else the midpoint of the best bid and ask; else the last
        trade; else none (the caller values at cost)."""
        if self.status == "settled" and self.result in ("yes", "no"):
            return (100 if self.result == "yes" else 0), "settlement"
        if self.yes_bid is not None and self.yes_ask is not None:
            return (self.yes_bid + self.yes_ask) // 2, "mid"
        if self.last_price is not None:
            return self.last_price, "last_trade"
        return None, "none"


async def user_fills(*, session: AsyncSession, user_id: uuid.UUID) -> list[FillRow]:
    """Every fill of the user, oldest first."""
    return [FillRow(*r) for r in await repo.user_fills(session, user_id)]


async def lots_version(*, session: AsyncSession, user_id: uuid.UUID) -> tuple[int, ...]:
    """A version of what `user_fills` and `user_settlements` return for the user: it changes
    whenever either would (both tables are insert-only; fills are never busted or corrected on
    the exchange). Read it before the rows and a cache keyed by it is never stale."""
    return await repo.lots_version(session, user_id)


async def user_settlements(*, session: AsyncSession, user_id: uuid.UUID) -> list[SettlementRow]:
    return [SettlementRow(*r) for r in await repo.user_settlements(session, user_id)]


async def open_positions(
    *, session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> list[PositionRow]:
    """Non-zero positions of these users."""
    if not user_ids:
        return []
    return [PositionRow(*r) for r in await repo.positions_of(session, user_ids)]


async def marks(
    *, session: AsyncSession, tickers: Sequence[str], day_start: dt.datetime
) -> dict[str, MarketMark]:
    if not tickers:
        return {}
    rows = await repo.market_marks(session, sorted(set(tickers)), day_start)
    return {r[0]: MarketMark(*r) for r in rows}
