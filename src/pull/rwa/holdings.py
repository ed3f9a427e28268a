"""RWA reads for the portfolio (part of the RWA public API; re-exported by `service`):
the events that build a holder's tax lots, and the marks of assets' shares."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from pull.rwa.repository import holdings as holding_repo


@dataclass(frozen=True, slots=True)
class ShareEvent:
    currency: str
    at: dt.datetime
    shares: int  # > 0 acquired, < 0 sold
    cents: int  # gross cash of the event (>= 0)
    seq: int


@dataclass(frozen=True, slots=True)
class ShareMark:
    currency: str
    asset_id: uuid.UUID
    title: str
    state: str
    last_trade: int | None
    previous_close: int | None
    offering_price: int | None

    def price(self) -> tuple[int | None, str]:
        """Cents per share and why: the last secondary trade, else the offering price (no
        trade yet), else none (the caller values at cost)."""
        if self.last_trade is not None:
            return self.last_trade, "last_trade"
        if self.offering_price is not None:
            return self.offering_price, "offering_price"
        return None, "none"

    def close_before_today(self) -> int | None:
        return self.previous_close if self.previous_close is not None else self.offering_price


async def share_events(*, session: AsyncSession, user_id: uuid.UUID) -> list[ShareEvent]:
    """Issued subscriptions (at the offering price) and secondary trades, oldest first.
    A buyout's payout is not a share event here (docs/portfolio.md, limits)."""
    out = []
    for currency, at, shares, cents, seq in await holding_repo.user_lot_events(session, user_id):
        out.append(
            ShareEvent(
                currency=cast(str, currency),
                at=cast(dt.datetime, at),
                shares=int(cast(int, shares)),
                cents=int(cast(int, cents)),
                seq=int(cast(int, seq)),
            )
        )
    return out


async def lots_version(*, session: AsyncSession, user_id: uuid.UUID) -> tuple[int, ...]:
    """A version of `share_events` for the user: it changes whenever they would (read it
    before them and a cache keyed by it is never stale)."""
    return await holding_repo.lots_version(session, user_id)


async def share_marks(
    *, session: AsyncSession, currencies: Sequence[str], day_start: dt.datetime
) -> dict[str, ShareMark]:
    if not currencies:
        return {}
    rows = await holding_repo.share_marks(session, sorted(set(currencies)), day_start)
    return {cast(str, r[0]): ShareMark(*r) for r in rows}  # type: ignore[arg-type]


async def reserved_by_sells(
    *, session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """Per user and share currency: shares sitting in the order escrow for resting sells
    (still the user's, though not on their ledger account until the sell executes)."""
    out: dict[uuid.UUID, dict[str, int]] = {}
    if not user_ids:
        return out
    for user, currency, shares in await holding_repo.open_sell_shares_of(session, user_ids):
        out.setdefault(user, {})[currency] = shares
    return out
