"""What the ledger's readers see: balances (a user's, an account's, several at once) and a
user's history. Read-only; other modules call them through `pull.ledger.service`."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.ledger import repository as repo
from pull.ledger.schemas import AccountRef, Balance, Transaction

# --- balances -------------------------------------------------------------------------------


async def get_balance(*, session: AsyncSession, user_id: uuid.UUID) -> Balance:
    accounts = await repo.user_accounts(session, user_id, "USD")
    zero = repo.AccountState("", 0, 0, 0)
    cash = accounts.get("cash", zero)
    held = accounts.get("held", zero)
    pending = accounts.get("pending_deposits", zero)
    instant = accounts.get("instant_credit", zero)
    available = cash.balance - cash.pending_debits
    held_total = held.balance + cash.pending_debits
    return Balance(
        available=available,
        held=held_total,
        pending_deposits=pending.balance,
        withdrawable=max(0, available - instant.balance),
        total=available + held_total + pending.balance,
    )


async def account_balance(*, session: AsyncSession, account: AccountRef) -> int:
    """The account's posted balance (0 for an account never used)."""
    state = await repo.account_state(session, account.owner_id, account.kind, account.currency)
    return 0 if state is None else state.balance


async def kind_balances(
    *, session: AsyncSession, owners: Sequence[uuid.UUID], kind: str, currency: str
) -> dict[uuid.UUID, int]:
    """Posted balances of several users' accounts of one kind and currency, in one read (an
    account never used reads 0)."""
    if not owners:
        return {}
    found = await repo.kind_balances(session, owners, kind, currency)
    return {o: found.get(o, 0) for o in owners}


async def currency_holders(
    *,
    session: AsyncSession,
    currency: str,
    kind: str = "shares",
    after: uuid.UUID | None = None,
    limit: int = 500,
) -> list[tuple[uuid.UUID, int]]:
    """Users holding a positive balance of `kind` in `currency` (e.g. an asset's shares), by
    user id, `limit` at a time after `after`: (user id, balance)."""
    return await repo.currency_holders(session, currency, kind, after=after, limit=limit)


async def share_holdings(
    *, session: AsyncSession, user_id: uuid.UUID
) -> list[tuple[str, int, int]]:
    """The user's shares of real-world assets: (share currency, posted, reserved by holds)."""
    return await repo.user_share_accounts(session, user_id)


async def system_balances(
    *, session: AsyncSession, names: Sequence[str], currency: str = "USD"
) -> dict[str, int]:
    """Posted balances of system accounts by name, in one query (names never used: absent)."""
    if not names:
        return {}
    return await repo.system_balances(session, list(names), currency)


async def account_available(*, session: AsyncSession, account: AccountRef) -> int:
    """Posted balance minus the debits reserved by open holds."""
    state = await repo.account_state(session, account.owner_id, account.kind, account.currency)
    return 0 if state is None else state.balance - state.pending_debits


# --- a user's history -----------------------------------------------------------------------


def _transaction(row: Any) -> Transaction:
    return Transaction(*row)


async def transactions(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    before_id: int | None = None,
    limit: int = 50,
    kind: str | None = None,
    account_kind: str | None = None,
) -> list[Transaction]:
    rows = await repo.user_entries(
        session, user_id, before_id=before_id, limit=limit, kind=kind, account_kind=account_kind
    )
    return [_transaction(r) for r in rows]


async def statement(
    *, session: AsyncSession, user_id: uuid.UUID, start: dt.datetime, end: dt.datetime
) -> list[Transaction]:
    rows = await repo.user_entries_between(session, user_id, start, end)
    return [_transaction(r) for r in rows]


async def entry_sums(
    *,
    session: AsyncSession,
    account_kind: str,
    currency: str,
    transfer_kinds: Sequence[str],
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    owner_id: uuid.UUID | None = None,
    owner_ids: Sequence[uuid.UUID] | None = None,
) -> dict[uuid.UUID, int]:
    """Per user: what transfers of `transfer_kinds` posted on their `account_kind` account in
    [start, end) (e.g. points earned in a period, for the rewards leaderboard and tiers)."""
    rows = await repo.entry_sums(
        session,
        account_kind=account_kind,
        currency=currency,
        transfer_kinds=transfer_kinds,
        start=start,
        end=end,
        owner_id=owner_id,
        owner_ids=owner_ids,
    )
    return dict(rows)
