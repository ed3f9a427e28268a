"""One posted transfer with thousands of legs in a constant number of set-based statements
(settling a market's positions: one escrow debit, a credit per winner).

`transfer` runs `ledger_apply`, which resolves, locks and updates accounts row at a time and
takes at most 64 legs; a settlement batch of 5,000 positions needed 81 such calls. This makes
exactly the same rows (one `ledger_transfers` row, one entry per non-zero leg with its
`balance_after`, the balances) with five statements whatever the number of legs:

1. the transfer row (`ON CONFLICT` on the idempotency key: a replay returns the first id, other
   content under the same key is an `IdempotencyConflict`);
2. the users' missing accounts, created in one `INSERT ... SELECT`;
3. the system accounts (few) through `ledger_account_ids`, so a system account resolves to this
   connection's shard row like every other transfer's;
4. every account locked in id order (`ORDER BY id FOR UPDATE`, the order `ledger_apply` locks
   in, so bulk and ordinary transfers never deadlock);
5. balances and entries in one `UPDATE ... RETURNING` feeding the `INSERT` of the entries.

A user account that would go below zero (counting open holds) is refused by the database's own
`user_not_negative` constraint: `InsufficientFunds` is raised and the transaction is aborted
(the caller's boundary rolls it back; nothing of it stays).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pull.ledger.errors import IdempotencyConflict, InsufficientFunds, InvalidTransfer
from pull.ledger.schemas import AccountRef, Leg
from pull.ledger.service import _check_key, _hash, _normalize

MAX_BULK_LEGS = 100_001

_INSERT_TRANSFER = text(
    "INSERT INTO ledger_transfers AS t (idempotency_key, kind, reference, content_hash, "
    "pending, status) VALUES (:key, :kind, :reference, :hash, false, 'posted') "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING t.id, t.created_at"
)
_EXISTING = text(
    "SELECT t.id, t.content_hash FROM ledger_transfers t WHERE t.idempotency_key = :key"
)
# Both joins against `unnest` also say `owner_id = ANY(:owners)`: an index condition the
# planner can see. Without it a settlement of 10,000 winners hash-joined a full scan of
# ledger_accounts (200,050 rows, statistics fresh: 272-280 ms create, 335-420 ms lock in
# EXPLAIN ANALYZE; 106-111 and 209-261 ms with it). docs/performance.md, "Set-based
# statements and the planner".
_CREATE_USER_ACCOUNTS = text(
    "INSERT INTO ledger_accounts (owner_id, currency, kind, shard) "
    "SELECT l.owner_id, l.currency, l.kind, 0 FROM unnest("
    "CAST(:owners AS uuid[]), CAST(:currencies AS text[]), CAST(:kinds AS text[])) "
    "AS l(owner_id, currency, kind) WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a "
    "WHERE a.owner_id = ANY(CAST(:owners AS uuid[])) "
    "AND a.owner_id = l.owner_id AND a.currency = l.currency AND a.kind = l.kind) "
    "ON CONFLICT DO NOTHING"
)
_SYSTEM_IDS = text(
    "SELECT ledger_account_ids(CAST(:owners AS uuid[]), CAST(:currencies AS text[]), "
    "CAST(:kinds AS text[]))"
)
_LOCK = text(
    "SELECT a.id, a.owner_id, a.currency, a.kind FROM ledger_accounts a WHERE a.id IN ("
    " SELECT unnest(CAST(:system AS bigint[]))"
    " UNION ALL"
    " SELECT u.id FROM unnest(CAST(:owners AS uuid[]), CAST(:currencies AS text[]),"
    "  CAST(:kinds AS text[])) AS l(owner_id, currency, kind)"
    " JOIN ledger_accounts u ON u.owner_id = ANY(CAST(:owners AS uuid[]))"
    "  AND u.owner_id = l.owner_id AND u.currency = l.currency"
    "  AND u.kind = l.kind) "
    "ORDER BY a.id FOR UPDATE"
)
_APPLY = text(
    "WITH l AS (SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:amounts AS bigint[])) "
    " AS l(id, amount)), "
    "u AS (UPDATE ledger_accounts a SET balance = a.balance + l.amount FROM l "
    " WHERE a.id = l.id RETURNING a.id, a.balance, l.amount) "
    "INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after, pending, "
    "created_at) SELECT :transfer, u.id, u.amount, u.balance, false, :created FROM u "
    "ORDER BY u.id"
)


async def transfer_bulk(
    *,
    session: AsyncSession,
    idempotency_key: str,
    kind: str,
    legs: Sequence[Leg],
    reference: str | None = None,
) -> int:
    """A posted transfer of any number of legs (up to MAX_BULK_LEGS), set-based; its id. A
    replay of the key with the same content returns the first transfer's id and writes
    nothing."""
    _check_key(idempotency_key)
    if not kind or len(kind) > 64:
        raise InvalidTransfer("kind is 1 to 64 characters")
    if reference is not None and len(reference) > 200:
        raise InvalidTransfer("reference is at most 200 characters")
    norm = _normalize(legs, MAX_BULK_LEGS)
    content_hash = _hash(kind, norm, reference, None, False)
    row = (
        await session.execute(
            _INSERT_TRANSFER,
            {"key": idempotency_key, "kind": kind, "reference": reference, "hash": content_hash},
        )
    ).one_or_none()
    if row is None:
        found = (await session.execute(_EXISTING, {"key": idempotency_key})).one()
        if found[1] != content_hash:
            raise IdempotencyConflict(details={"idempotency_key": idempotency_key})
        return int(found[0])
    transfer_id, created = int(row[0]), row[1]
    users = [leg.account for leg in norm if leg.account.owner_id is not None]
    system = [leg.account for leg in norm if leg.account.owner_id is None]
    user_args = {
        "owners": [a.owner_id for a in users],
        "currencies": [a.currency for a in users],
        "kinds": [a.kind for a in users],
    }
    try:
        if users:
            await session.execute(_CREATE_USER_ACCOUNTS, user_args)
    except IntegrityError as exc:
        if "fk_ledger_accounts_owner_id_users" in str(exc.orig):
            raise InvalidTransfer("An account's owner is not a user") from exc
        raise
    system_ids: list[int] = []
    if system:
        system_ids = list(
            (
                await session.execute(
                    _SYSTEM_IDS,
                    {
                        "owners": [None] * len(system),
                        "currencies": [a.currency for a in system],
                        "kinds": [a.kind for a in system],
                    },
                )
            ).scalar_one()
        )
    ids: dict[AccountRef, int] = dict(zip(system, system_ids, strict=True))
    for account_id, owner, currency, kind_ in (
        await session.execute(_LOCK, {"system": system_ids, **user_args})
    ).all():
        if owner is not None:
            ids[AccountRef(owner_id=uuid.UUID(str(owner)), kind=kind_, currency=currency)] = int(
                account_id
            )
    if len(ids) != len(norm):
        raise InvalidTransfer("an account of the transfer could not be resolved")
    try:
        await session.execute(
            _APPLY,
            {
                "ids": [ids[leg.account] for leg in norm],
                "amounts": [leg.amount for leg in norm],
                "transfer": transfer_id,
                "created": created,
            },
        )
    except IntegrityError as exc:
        if "user_not_negative" in str(exc.orig):
            raise InsufficientFunds() from exc
        raise
    return transfer_id
