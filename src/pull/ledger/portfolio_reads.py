"""Ledger reads for the portfolio, re-exported by `pull.ledger.service` (its public API).

Bulk balances per user and the money that entered or left PULL through funding, which the
portfolio needs for net deposits, cash flows and the time-weighted return."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from pull.ledger import portfolio_repository as repo


@dataclass(frozen=True, slots=True)
class ExternalFlow:
    """Money in (> 0) or out (< 0) of PULL for one user, in cents."""

    transfer_id: int
    kind: str
    at: dt.datetime
    amount: int


@dataclass(slots=True)
class UserBalances:
    """One user's balances as the portfolio shows them (cents, points, shares)."""

    available: int = 0
    held: int = 0
    pending: int = 0
    points_posted: int = 0
    points_available: int = 0
    shares: dict[str, int] = field(default_factory=dict)

    @property
    def cash_total(self) -> int:
        return self.available + self.held + self.pending


async def external_flows(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> list[ExternalFlow]:
    """The user's deposits (+) and withdrawals (-) as they posted, oldest first."""
    return [ExternalFlow(*r) for r in await repo.external_flows(session, user_id, start, end)]


async def entries_version(
    *, session: AsyncSession, user_id: uuid.UUID, account_kind: str, transfer_kind: str
) -> tuple[int, int]:
    """A version of the user's entries of `transfer_kind` transfers on their `account_kind`
    accounts: entries are insert-only, so it changes whenever a new one is visible (read it
    before the entries and a cache keyed by it is never stale)."""
    return await repo.entries_version(session, user_id, account_kind, transfer_kind)


async def external_flow_totals(
    *,
    session: AsyncSession,
    user_ids: Sequence[uuid.UUID],
    start: dt.datetime,
    end: dt.datetime,
) -> dict[uuid.UUID, int]:
    """Per user: net money in through funding during [start, end) (absent: none)."""
    if not user_ids:
        return {}
    return await repo.external_flow_totals(session, user_ids, start, end)


async def user_balances(
    *, session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, UserBalances]:
    """Cash (available, held, pending deposits), points and RWA shares of many users in one
    query; the same definitions as `get_balance` (held includes open holds on cash)."""
    out = {u: UserBalances() for u in user_ids}
    if not user_ids:
        return out
    for owner, currency, kind, balance, pending_debits in await repo.balances_of(session, user_ids):
        b = out[owner]
        if currency == "USD":
            if kind == "cash":
                b.available += balance - pending_debits
                b.held += pending_debits
            elif kind == "held":
                b.held += balance
            elif kind == "pending_deposits":
                b.pending += balance
        elif currency == "PTS" and kind == "points":
            b.points_posted = balance
            b.points_available = balance - pending_debits
        elif kind == "shares" and balance:
            b.shares[currency] = balance
    return out


async def account_owners_after(
    *, session: AsyncSession, after: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    """Users with any ledger account, by id after `after`: the customers with something to
    value (a snapshot run walks them in batches)."""
    return await repo.users_after(session, after, limit)
