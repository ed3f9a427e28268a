"""Read-only SQL for the portfolio (bulk balances, money in and out through funding)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# A transfer moves money into or out of PULL when it has a leg on `bank_clearing`: deposits,
# their returns, withdrawals and their returns. Its external amount for the user is minus that
# leg (a withdrawal's fee stays inside: it is an expense, not a flow).
_FLOWS = """
WITH ut AS (
    SELECT DISTINCT e.transfer_id
      FROM ledger_accounts a JOIN ledger_entries e ON e.account_id = a.id
     WHERE a.owner_id = :owner AND a.currency = 'USD' AND NOT e.pending
)
SELECT t.id, t.kind, t.created_at, -sum(ce.amount)::bigint
  FROM ut
  JOIN ledger_transfers t ON t.id = ut.transfer_id
  JOIN ledger_entries ce ON ce.transfer_id = t.id AND NOT ce.pending
  JOIN ledger_accounts ca ON ca.id = ce.account_id
 WHERE ca.owner_id IS NULL AND ca.kind = 'bank_clearing' AND ca.currency = 'USD'
   AND (CAST(:start AS timestamptz) IS NULL OR t.created_at >= CAST(:start AS timestamptz))
   AND (CAST(:end AS timestamptz) IS NULL OR t.created_at < CAST(:end AS timestamptz))
 GROUP BY t.id
 ORDER BY t.created_at, t.id
"""


async def external_flows(
    session: AsyncSession,
    user_id: uuid.UUID,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> list[tuple[int, str, dt.datetime, int]]:
    rows = await session.execute(text(_FLOWS), {"owner": user_id, "start": start, "end": end})
    return [(r[0], r[1], r[2], int(r[3])) for r in rows.all()]


async def external_flow_totals(
    session: AsyncSession, user_ids: Sequence[uuid.UUID], start: dt.datetime, end: dt.datetime
) -> dict[uuid.UUID, int]:
    """Per user of `user_ids`: the external amount of funding transfers in [start, end).
    Walks the users' own USD entries (index on account), then each transfer's clearing leg, so
    a batch costs what its users did, not what every customer did."""
    sql = """
    WITH ut AS (
        SELECT DISTINCT a.owner_id, e.transfer_id
          FROM ledger_accounts a JOIN ledger_entries e ON e.account_id = a.id
         WHERE a.owner_id = ANY(:owners) AND a.currency = 'USD' AND NOT e.pending
           AND e.created_at >= :start AND e.created_at < :end
    )
    SELECT ut.owner_id, -sum(ce.amount)::bigint
      FROM ut JOIN ledger_entries ce ON ce.transfer_id = ut.transfer_id AND NOT ce.pending
      JOIN ledger_accounts ca ON ca.id = ce.account_id
     WHERE ca.owner_id IS NULL AND ca.kind = 'bank_clearing' AND ca.currency = 'USD'
     GROUP BY ut.owner_id
    """
    rows = await session.execute(text(sql), {"owners": list(user_ids), "start": start, "end": end})
    return {r[0]: int(r[1]) for r in rows.all()}


async def balances_of(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> list[tuple[uuid.UUID, str, str, int, int]]:
    """(owner, currency, kind, balance, pending_debits) of every account of these users."""
    rows = await session.execute(
        text(
            "SELECT owner_id, currency, kind, balance, pending_debits FROM ledger_accounts "
            "WHERE owner_id = ANY(:owners)"
        ),
        {"owners": list(user_ids)},
    )
    return [(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows.all()]


async def users_after(
    session: AsyncSession, after: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    """Distinct owners of ledger accounts, by id, after `after` (a snapshot run's batches)."""
    rows = await session.execute(
        text(
            "SELECT DISTINCT owner_id FROM ledger_accounts WHERE owner_id IS NOT NULL "
            "AND (CAST(:after AS uuid) IS NULL OR owner_id > CAST(:after AS uuid)) "
            "ORDER BY owner_id LIMIT :n"
        ),
        {"after": after, "n": limit},
    )
    return [r[0] for r in rows.all()]


async def entries_version(
    session: AsyncSession, user_id: uuid.UUID, account_kind: str, transfer_kind: str
) -> tuple[int, int]:
    """(count, max id) of the entries of `transfer_kind` transfers on the user's
    `account_kind` accounts (entries are insert-only)."""
    row = (
        await session.execute(
            text(
                "SELECT count(*), coalesce(max(e.id), 0) "
                "  FROM ledger_accounts a JOIN ledger_entries e ON e.account_id = a.id "
                "  JOIN ledger_transfers t ON t.id = e.transfer_id "
                " WHERE a.owner_id = :owner AND a.kind = :akind AND t.kind = :tkind"
            ),
            {"owner": user_id, "akind": account_kind, "tkind": transfer_kind},
        )
    ).one()
    return int(row[0]), int(row[1])
