"""All SQL of the ledger. Nothing here commits; the caller's boundary does."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Ids of (owner, currency, kind) accounts in the order given, creating the missing ones. A
# system account resolves to its row for this connection's shard (backend pid mod 16).
# Row-at-a-time lookups: each is a cached index scan whatever the number of accounts.
ACCOUNT_IDS_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_account_ids(p_owners uuid[], p_currencies text[], p_kinds text[])
RETURNS bigint[] LANGUAGE plpgsql AS $fn$
DECLARE
    v_ids bigint[] := '{}';
    v_id bigint;
    v_shard smallint := pg_backend_pid() % 16;
BEGIN
    FOR i IN 1 .. cardinality(p_kinds) LOOP
        FOR attempt IN 1 .. 2 LOOP
            IF p_owners[i] IS NULL THEN
                SELECT a.id INTO v_id FROM ledger_accounts a
                 WHERE a.owner_id IS NULL AND a.currency = p_currencies[i]
                   AND a.kind = p_kinds[i] AND a.shard = v_shard;
            ELSE
                SELECT a.id INTO v_id FROM ledger_accounts a
                 WHERE a.owner_id = p_owners[i] AND a.currency = p_currencies[i]
                   AND a.kind = p_kinds[i];
            END IF;
            EXIT WHEN v_id IS NOT NULL;
            INSERT INTO ledger_accounts AS a (owner_id, currency, kind, shard)
            VALUES (p_owners[i], p_currencies[i], p_kinds[i],
                    CASE WHEN p_owners[i] IS NULL THEN v_shard ELSE 0 END)
            ON CONFLICT DO NOTHING
            RETURNING a.id INTO v_id;
            EXIT WHEN v_id IS NOT NULL;
        END LOOP;
        IF v_id IS NULL THEN
            RAISE EXCEPTION 'ledger: could not create account %', p_kinds[i];
        END IF;
        v_ids := v_ids || v_id;
    END LOOP;
    RETURN v_ids;
END
$fn$;
"""

# Apply one transfer atomically. Per leg i: account, the entry amount (0 = no entry), and the
# changes of balance, pending_debits and pending_credits. Returns one row:
#   ('created', id, created_at, NULL)   written
#   ('replay',  id, created_at, NULL)   the key exists with the same content hash
#   ('conflict', id, created_at, NULL)  the key exists with other content
#   ('insufficient', NULL, NULL, account_id)  a user account would go below zero; nothing written
# Accounts are locked in id order, so concurrent transfers never deadlock each other.
APPLY_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_apply(
    p_key text, p_kind text, p_reference text, p_metadata jsonb, p_hash text,
    p_pending boolean, p_status text, p_pending_id bigint,
    p_owners uuid[], p_currencies text[], p_kinds text[], p_account_ids bigint[],
    p_amounts bigint[], p_d_balance bigint[], p_d_pdebit bigint[], p_d_pcredit bigint[]
) RETURNS TABLE (status text, transfer_id bigint, created_at timestamptz, account_id bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_id bigint;
    v_hash text;
    v_created timestamptz;
    v_ids bigint[];
    v_order int[];
    v_balances bigint[] := '{}';
    v_user boolean;
    v_available bigint;
    v_balance bigint;
    i int;
BEGIN
    SELECT t.id, t.content_hash, t.created_at INTO v_id, v_hash, v_created
      FROM ledger_transfers t WHERE t.idempotency_key = p_key;
    IF FOUND THEN
        RETURN QUERY SELECT CASE WHEN v_hash = p_hash THEN 'replay' ELSE 'conflict' END,
                            v_id, v_created, NULL::bigint;
        RETURN;
    END IF;

    IF p_account_ids IS NULL THEN
        v_ids := ledger_account_ids(p_owners, p_currencies, p_kinds);
    ELSE
        v_ids := p_account_ids;
    END IF;

    -- Lock every account in id order; refuse (writing nothing) if a user account would go
    -- below zero counting what open holds reserve.
    SELECT array_agg(g.i ORDER BY v_ids[g.i]) INTO v_order
      FROM generate_subscripts(v_ids, 1) AS g(i);
    FOREACH i IN ARRAY v_order LOOP
        SELECT a.owner_id IS NOT NULL, a.balance - a.pending_debits INTO v_user, v_available
          FROM ledger_accounts a WHERE a.id = v_ids[i] FOR UPDATE;
        IF v_user AND p_d_balance[i] - p_d_pdebit[i] < 0
           AND v_available + p_d_balance[i] - p_d_pdebit[i] < 0 THEN
            RETURN QUERY SELECT 'insufficient'::text, NULL::bigint, NULL::timestamptz, v_ids[i];
            RETURN;
        END IF;
    END LOOP;

    INSERT INTO ledger_transfers AS t
           (idempotency_key, kind, reference, metadata, content_hash, pending, status, pending_id)
    VALUES (p_key, p_kind, p_reference, p_metadata, p_hash, p_pending, p_status, p_pending_id)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING t.id, t.created_at INTO v_id, v_created;
    IF v_id IS NULL THEN
        -- The same key was committed by a concurrent transaction while we waited.
        SELECT t.id, t.content_hash, t.created_at INTO v_id, v_hash, v_created
          FROM ledger_transfers t WHERE t.idempotency_key = p_key;
        RETURN QUERY SELECT CASE WHEN v_hash = p_hash THEN 'replay' ELSE 'conflict' END,
                            v_id, v_created, NULL::bigint;
        RETURN;
    END IF;

    IF p_pending_id IS NOT NULL THEN
        UPDATE ledger_transfers t SET status = p_status
         WHERE t.id = p_pending_id AND t.status = 'pending' AND t.pending;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'ledger: transfer % is not pending', p_pending_id;
        END IF;
    END IF;

    FOR i IN 1 .. cardinality(v_ids) LOOP
        UPDATE ledger_accounts a
           SET balance = a.balance + p_d_balance[i],
               pending_debits = a.pending_debits + p_d_pdebit[i],
               pending_credits = a.pending_credits + p_d_pcredit[i]
         WHERE a.id = v_ids[i]
        RETURNING a.balance INTO v_balance;
        v_balances := v_balances || v_balance;
    END LOOP;

    INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after, pending, created_at)
    SELECT v_id, l.id, l.amount, l.balance, p_pending, v_created
      FROM unnest(v_ids, p_amounts, v_balances) AS l(id, amount, balance)
     WHERE l.amount <> 0;

    RETURN QUERY SELECT 'created'::text, v_id, v_created, NULL::bigint;
END
$fn$;
"""

DROP_FUNCTIONS = (
    "DROP FUNCTION IF EXISTS ledger_apply(text, text, text, jsonb, text, boolean, text, bigint, "
    "uuid[], text[], text[], bigint[], bigint[], bigint[], bigint[], bigint[])",
    "DROP FUNCTION IF EXISTS ledger_account_ids(uuid[], text[], text[])",
)


# --- writing --------------------------------------------------------------------------------

_APPLY = text(
    "SELECT status, transfer_id, created_at, account_id FROM ledger_apply("
    ":key, :kind, :reference, CAST(:metadata AS jsonb), :hash, :pending, :status, "
    "CAST(:pending_id AS bigint), CAST(:owners AS uuid[]), CAST(:currencies AS text[]), "
    "CAST(:kinds AS text[]), CAST(:account_ids AS bigint[]), CAST(:amounts AS bigint[]), "
    "CAST(:d_balance AS bigint[]), CAST(:d_pdebit AS bigint[]), CAST(:d_pcredit AS bigint[]))"
)


# Many transfers in one round trip: `ledger_apply` once per element of a JSON array, in order
# (the same function, checks and locks as one transfer each).
_APPLY_MANY = text(
    "SELECT r.status, r.transfer_id, r.created_at, r.account_id "
    "FROM jsonb_array_elements(CAST(:batch AS jsonb)) WITH ORDINALITY AS b(t, n) "
    "CROSS JOIN LATERAL ledger_apply("
    " b.t->>'key', b.t->>'kind', b.t->>'reference', b.t->'metadata', b.t->>'hash', false,"
    " 'posted', NULL::bigint,"
    " ARRAY(SELECT x::uuid FROM jsonb_array_elements_text(b.t->'owners')"
    "       WITH ORDINALITY AS o(x, i) ORDER BY i),"
    " ARRAY(SELECT x FROM jsonb_array_elements_text(b.t->'currencies')"
    "       WITH ORDINALITY AS o(x, i) ORDER BY i),"
    " ARRAY(SELECT x FROM jsonb_array_elements_text(b.t->'kinds')"
    "       WITH ORDINALITY AS o(x, i) ORDER BY i),"
    " NULL::bigint[],"
    " ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(b.t->'amounts')"
    "       WITH ORDINALITY AS o(x, i) ORDER BY i),"
    " ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(b.t->'amounts')"
    "       WITH ORDINALITY AS o(x, i) ORDER BY i),"
    " array_fill(0::bigint, ARRAY[jsonb_array_length(b.t->'amounts')]),"
    " array_fill(0::bigint, ARRAY[jsonb_array_length(b.t->'amounts')])"
    ") AS r ORDER BY b.n"
)


@dataclass(frozen=True, slots=True)
class Applied:
    status: str  # created | replay | conflict | insufficient
    transfer_id: int | None
    created_at: dt.datetime | None
    account_id: int | None


async def apply(
    session: AsyncSession,
    *,
    key: str,
    kind: str,
    reference: str | None,
    metadata_json: str | None,
    content_hash: str,
    pending: bool,
    status: str,
    pending_id: int | None,
    owners: Sequence[uuid.UUID | None] | None,
    currencies: Sequence[str] | None,
    kinds: Sequence[str] | None,
    account_ids: Sequence[int] | None,
    amounts: Sequence[int],
    d_balance: Sequence[int],
    d_pdebit: Sequence[int],
    d_pcredit: Sequence[int],
) -> Applied:
    """One round trip: lock, check, write the transfer, its entries and the balances."""
    row = (
        await session.execute(
            _APPLY,
            {
                "key": key,
                "kind": kind,
                "reference": reference,
                "metadata": metadata_json,
                "hash": content_hash,
                "pending": pending,
                "status": status,
                "pending_id": pending_id,
                "owners": owners,
                "currencies": currencies,
                "kinds": kinds,
                "account_ids": account_ids,
                "amounts": amounts,
                "d_balance": d_balance,
                "d_pdebit": d_pdebit,
                "d_pcredit": d_pcredit,
            },
        )
    ).one()
    return Applied(row[0], row[1], row[2], row[3])


async def apply_many(session: AsyncSession, batch_json: str) -> list[Applied]:
    """Posted transfers, one `ledger_apply` each, in one statement; results in order."""
    rows = (await session.execute(_APPLY_MANY, {"batch": batch_json})).all()
    return [Applied(r[0], r[1], r[2], r[3]) for r in rows]


# --- reading transfers ----------------------------------------------------------------------

_TRANSFER_COLUMNS = (
    "t.id, t.idempotency_key, t.kind, t.reference, t.metadata, t.content_hash, t.pending, "
    "t.status, t.pending_id, t.created_at"
)


@dataclass(frozen=True, slots=True)
class TransferRow:
    id: int
    idempotency_key: str
    kind: str
    reference: str | None
    metadata: dict[str, Any] | None
    content_hash: str
    pending: bool
    status: str
    pending_id: int | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class EntryRow:
    account_id: int
    owner_id: uuid.UUID | None
    currency: str
    kind: str
    amount: int


def _transfer(row: Any) -> TransferRow:
    return TransferRow(*row[:10])


async def transfer_with_entries(
    session: AsyncSession,
    *,
    transfer_id: int | None = None,
    idempotency_key: str | None = None,
    lock: bool = False,
) -> tuple[TransferRow, list[EntryRow]] | None:
    """A transfer and its entries (in leg order); `lock` takes the transfer row FOR UPDATE."""
    where = "t.id = :id" if transfer_id is not None else "t.idempotency_key = :key"
    sql = (
        f"SELECT {_TRANSFER_COLUMNS} FROM ledger_transfers t WHERE {where}"  # noqa: S608
        + (" FOR UPDATE" if lock else "")
    )
    params = {"id": transfer_id, "key": idempotency_key}
    row = (await session.execute(text(sql), params)).one_or_none()
    if row is None:
        return None
    transfer = _transfer(row)
    entries = (
        await session.execute(
            text(
                "SELECT e.account_id, a.owner_id, a.currency, a.kind, e.amount "
                "FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
                "WHERE e.transfer_id = :id ORDER BY e.id"
            ),
            {"id": transfer.id},
        )
    ).all()
    return transfer, [EntryRow(*e) for e in entries]


async def account_label(
    session: AsyncSession, account_id: int
) -> tuple[uuid.UUID | None, str, str]:
    row = (
        await session.execute(
            text("SELECT owner_id, kind, currency FROM ledger_accounts WHERE id = :id"),
            {"id": account_id},
        )
    ).one()
    return row[0], row[1], row[2]


# --- balances -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountState:
    kind: str
    balance: int
    pending_debits: int
    pending_credits: int


async def user_accounts(
    session: AsyncSession, user_id: uuid.UUID, currency: str
) -> dict[str, AccountState]:
    rows = (
        await session.execute(
            text(
                "SELECT kind, balance, pending_debits, pending_credits FROM ledger_accounts "
                "WHERE owner_id = :owner AND currency = :currency"
            ),
            {"owner": user_id, "currency": currency},
        )
    ).all()
    return {r[0]: AccountState(r[0], r[1], r[2], r[3]) for r in rows}


async def currency_holders(
    session: AsyncSession, currency: str, kind: str, *, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, int]]:
    """(owner, balance) of the user accounts of `kind` in `currency` with a positive balance,
    by owner id after `after`."""
    rows = (
        await session.execute(
            text(
                "SELECT owner_id, balance FROM ledger_accounts WHERE currency = :c AND kind = :k "
                "AND owner_id IS NOT NULL AND balance > 0 "
                "AND (CAST(:after AS uuid) IS NULL OR owner_id > CAST(:after AS uuid)) "
                "ORDER BY owner_id LIMIT :n"
            ),
            {"c": currency, "k": kind, "after": after, "n": limit},
        )
    ).all()
    return [(r[0], r[1]) for r in rows]


async def user_share_accounts(
    session: AsyncSession, user_id: uuid.UUID
) -> list[tuple[str, int, int]]:
    """(currency, balance, pending_debits) of the user's `shares` accounts (RWA<n> currencies)."""
    rows = (
        await session.execute(
            text(
                "SELECT currency, balance, pending_debits FROM ledger_accounts "
                "WHERE owner_id = :owner AND kind = 'shares' ORDER BY currency"
            ),
            {"owner": user_id},
        )
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


async def account_state(
    session: AsyncSession, owner_id: uuid.UUID | None, kind: str, currency: str
) -> AccountState | None:
    if owner_id is None:  # the sum of the system account's shards
        sql = (
            "SELECT kind, sum(balance)::bigint, sum(pending_debits)::bigint, "
            "sum(pending_credits)::bigint FROM ledger_accounts "
            "WHERE owner_id IS NULL AND kind = :kind AND currency = :currency GROUP BY kind"
        )
    else:
        sql = (
            "SELECT kind, balance, pending_debits, pending_credits FROM ledger_accounts "
            "WHERE owner_id = :owner AND kind = :kind AND currency = :currency"
        )
    row = (
        await session.execute(text(sql), {"owner": owner_id, "kind": kind, "currency": currency})
    ).one_or_none()
    return None if row is None else AccountState(row[0], row[1], row[2], row[3])


async def kind_balances(
    session: AsyncSession, owners: Sequence[uuid.UUID], kind: str, currency: str
) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        text(
            "SELECT owner_id, balance FROM ledger_accounts WHERE owner_id = ANY(:owners) "
            "AND kind = :kind AND currency = :currency"
        ),
        {"owners": list(owners), "kind": kind, "currency": currency},
    )
    return {r[0]: int(r[1]) for r in rows}


# --- trial balance --------------------------------------------------------------------------


async def currency_totals(session: AsyncSession) -> list[tuple[str, int, int, int, int]]:
    rows = (
        await session.execute(
            text(
                "SELECT currency, COALESCE(sum(balance), 0)::bigint, "
                "COALESCE(sum(pending_debits), 0)::bigint, "
                "COALESCE(sum(pending_credits), 0)::bigint, count(*) "
                "FROM ledger_accounts GROUP BY currency ORDER BY currency"
            )
        )
    ).all()
    return [(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]


async def system_account_totals(session: AsyncSession) -> list[tuple[str, str, int, int]]:
    """(kind, currency, balance, balance - pending debits) per system account, over shards."""
    rows = (
        await session.execute(
            text(
                "SELECT kind, currency, sum(balance)::bigint, "
                "sum(balance - pending_debits)::bigint FROM ledger_accounts "
                "WHERE owner_id IS NULL GROUP BY kind, currency ORDER BY kind, currency"
            )
        )
    ).all()
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


async def system_balances(session: AsyncSession, names: list[str], currency: str) -> dict[str, int]:
    rows = (
        await session.execute(
            text(
                "SELECT kind, sum(balance)::bigint FROM ledger_accounts WHERE owner_id IS NULL "
                "AND currency = :c AND kind = ANY(:names) GROUP BY kind"
            ),
            {"c": currency, "names": names},
        )
    ).all()
    return {str(r[0]): int(r[1]) for r in rows}


async def negative_user_accounts(
    session: AsyncSession, limit: int = 100
) -> tuple[int, int, list[tuple[uuid.UUID, str, str, int, int]]]:
    """(user accounts, how many are negative, the first `limit` negative ones)."""
    counts = (
        await session.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE balance - pending_debits < 0) "
                "FROM ledger_accounts WHERE owner_id IS NOT NULL"
            )
        )
    ).one()
    rows = (
        await session.execute(
            text(
                "SELECT owner_id, kind, currency, balance, balance - pending_debits "
                "FROM ledger_accounts WHERE owner_id IS NOT NULL "
                "AND balance - pending_debits < 0 ORDER BY id LIMIT :n"
            ),
            {"n": limit},
        )
    ).all()
    return int(counts[0]), int(counts[1]), [(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]


async def account_mismatches(session: AsyncSession, limit: int = 100) -> list[Any]:
    """Accounts whose balance or reservations differ from what their entries add up to."""
    return list(
        (
            await session.execute(
                text(
                    """
                    SELECT a.id, a.owner_id, a.kind, a.currency, a.shard,
                           a.balance, COALESCE(s.posted, 0)::bigint,
                           a.pending_debits, COALESCE(s.pd, 0)::bigint,
                           a.pending_credits, COALESCE(s.pc, 0)::bigint
                      FROM ledger_accounts a
                      LEFT JOIN (
                        SELECT e.account_id,
                               sum(e.amount) FILTER (WHERE NOT e.pending) AS posted,
                               sum(-e.amount) FILTER (
                                   WHERE e.pending AND t.status = 'pending' AND e.amount < 0
                               ) AS pd,
                               sum(e.amount) FILTER (
                                   WHERE e.pending AND t.status = 'pending' AND e.amount > 0
                               ) AS pc
                          FROM ledger_entries e
                          JOIN ledger_transfers t ON t.id = e.transfer_id
                         GROUP BY e.account_id
                      ) s ON s.account_id = a.id
                     WHERE a.balance <> COALESCE(s.posted, 0)
                        OR a.pending_debits <> COALESCE(s.pd, 0)
                        OR a.pending_credits <> COALESCE(s.pc, 0)
                     ORDER BY a.id
                     LIMIT :limit
                    """
                ),
                {"limit": limit},
            )
        ).all()
    )


async def unbalanced_transfers(session: AsyncSession, limit: int = 100) -> list[int]:
    """Transfers whose entries do not sum to zero in some currency (there must be none)."""
    rows = await session.execute(
        text(
            "SELECT DISTINCT e.transfer_id FROM ledger_entries e "
            "JOIN ledger_accounts a ON a.id = e.account_id "
            "GROUP BY e.transfer_id, a.currency HAVING sum(e.amount) <> 0 "
            "ORDER BY e.transfer_id LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [r[0] for r in rows]


# --- a user's transactions ------------------------------------------------------------------

_TX_SELECT = """
SELECT e.id, e.transfer_id, t.kind, a.kind, a.currency, e.amount, e.balance_after,
       t.status, e.pending, t.reference, e.created_at
  FROM ledger_entries e
  JOIN ledger_accounts a ON a.id = e.account_id
  JOIN ledger_transfers t ON t.id = e.transfer_id
 WHERE a.owner_id = :owner AND a.kind <> 'instant_credit'
"""


async def user_entries(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    before_id: int | None,
    limit: int,
    kind: str | None = None,
    account_kind: str | None = None,
) -> list[Any]:
    """Newest first, keyset-paginated by entry id."""
    sql = _TX_SELECT
    if before_id is not None:
        sql += " AND e.id < :before"
    if kind is not None:
        sql += " AND t.kind = :kind"
    if account_kind is not None:
        sql += " AND a.kind = :account_kind"
    sql += " ORDER BY e.id DESC LIMIT :limit"
    params = {
        "owner": user_id,
        "before": before_id,
        "limit": limit,
        "kind": kind,
        "account_kind": account_kind,
    }
    return list((await session.execute(text(sql), params)).all())


async def user_entries_between(
    session: AsyncSession, user_id: uuid.UUID, start: dt.datetime, end: dt.datetime
) -> list[Any]:
    """Oldest first, created in [start, end)."""
    sql = _TX_SELECT + " AND e.created_at >= :start AND e.created_at < :end ORDER BY e.id"
    params = {"owner": user_id, "start": start, "end": end}
    return list((await session.execute(text(sql), params)).all())


async def entry_sums(
    session: AsyncSession,
    *,
    account_kind: str,
    currency: str,
    transfer_kinds: Sequence[str],
    start: dt.datetime | None,
    end: dt.datetime | None,
    owner_id: uuid.UUID | None = None,
    owner_ids: Sequence[uuid.UUID] | None = None,
) -> list[tuple[uuid.UUID, int]]:
    """Per user owner: the sum of posted entries on their `account_kind` account made by
    transfers of the given kinds, created in [start, end)."""
    sql = (
        "SELECT a.owner_id, sum(e.amount)::bigint FROM ledger_entries e "
        "JOIN ledger_accounts a ON a.id = e.account_id "
        "JOIN ledger_transfers t ON t.id = e.transfer_id "
        "WHERE a.owner_id IS NOT NULL AND a.kind = :account_kind AND a.currency = :currency "
        "AND NOT e.pending AND t.kind = ANY(:kinds)"
    )
    if owner_id is not None:
        sql += " AND a.owner_id = :owner"
    if owner_ids is not None:
        sql += " AND a.owner_id = ANY(CAST(:owners AS uuid[]))"
    if start is not None:
        sql += " AND e.created_at >= :start"
    if end is not None:
        sql += " AND e.created_at < :end"
    sql += " GROUP BY a.owner_id"
    params = {
        "account_kind": account_kind,
        "currency": currency,
        "kinds": list(transfer_kinds),
        "owner": owner_id,
        "owners": list(owner_ids) if owner_ids is not None else None,
        "start": start,
        "end": end,
    }
    return [(r[0], int(r[1])) for r in (await session.execute(text(sql), params)).all()]
