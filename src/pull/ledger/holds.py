"""Posting many holds at once (`service.post_pending_many`): for batch consumers that settle
many two-leg holds in one transaction (the brokerage's trade event consumer posts one hold per
fill). Two round trips for the whole batch instead of three per hold: the holds and their
entries are read (and locked) in one statement, and every posting is written by
`ledger_apply` (the same function, checks and account locks as `post_pending`) in a second.
Each posting is exactly what `post_pending(idempotency_key=..., amount=...)` would write (same
key `<hold key>:post`, content hash and entries), so a replay of either is recognized by the
other; a hold that is not pending any more goes through `post_pending` itself (its replay
check)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_HOLDS = text(
    "SELECT t.id, t.idempotency_key, t.kind, t.reference, t.pending, t.status, t.pending_id, "
    "       e.account_id, a.owner_id, a.currency, a.kind, e.amount "
    "FROM ledger_transfers t "
    "JOIN ledger_entries e ON e.transfer_id = t.id "
    "JOIN ledger_accounts a ON a.id = e.account_id "
    "WHERE t.idempotency_key = ANY(CAST(:keys AS text[])) "
    "ORDER BY t.id, e.id FOR UPDATE OF t"
)

_POST_MANY = text(
    "SELECT r.status, r.transfer_id "
    "FROM jsonb_array_elements(CAST(:batch AS jsonb)) WITH ORDINALITY AS b(t, n) "
    "CROSS JOIN LATERAL ledger_apply("
    " b.t->>'key', b.t->>'kind', b.t->>'reference', NULL::jsonb, b.t->>'hash', false,"
    " 'posted', (b.t->>'pending_id')::bigint, NULL::uuid[], NULL::text[], NULL::text[],"
    " ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(b.t->'account_ids')"
    "       WITH ORDINALITY AS o(x, i) ORDER BY i),"
    " ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(b.t->'amounts')"
    "       WITH ORDINALITY AS o(x, i) ORDER BY i),"
    " ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(b.t->'amounts')"
    "       WITH ORDINALITY AS o(x, i) ORDER BY i),"
    " ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(b.t->'d_pdebit')"
    "       WITH ORDINALITY AS o(x, i) ORDER BY i),"
    " ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(b.t->'d_pcredit')"
    "       WITH ORDINALITY AS o(x, i) ORDER BY i)"
    ") AS r ORDER BY b.n"
)


async def post_many(session: AsyncSession, posts: Sequence[tuple[str, int]]) -> None:
    """Post each hold (by idempotency key) with `amount` of its two legs, the rest released."""
    from pull.ledger import service  # (service re-exports this function)

    if not posts:
        return
    keys = [k for k, _ in posts]
    holds: dict[str, list[Any]] = {}
    for row in (await session.execute(_HOLDS, {"keys": keys})).all():
        holds.setdefault(row[1], []).append(row)
    batch: list[dict[str, Any]] = []
    single: list[tuple[str, int]] = []
    for key, amount in posts:
        rows = holds.get(key)
        if (
            not rows
            or len(rows) != 2
            or not rows[0][4]
            or rows[0][6] is not None
            or rows[0][5] != "pending"
            or type(amount) is not int
            or not 0 <= amount <= max(abs(r[11]) for r in rows)
        ):
            single.append((key, amount))  # not a plain pending two-leg hold: the full checks
            continue
        posted = [amount if r[11] > 0 else -amount for r in rows]
        legs = [
            service.Leg(service.AccountRef(owner_id=r[8], kind=r[10], currency=r[9]), p)
            for r, p in zip(rows, posted, strict=True)
            if p != 0
        ]
        hold_kind, reference = rows[0][2], rows[0][3]
        batch.append(
            {
                "key": f"{key}:post",
                "kind": hold_kind,
                "reference": reference,
                "hash": service.content_hash(hold_kind + ":post", legs, reference),
                "pending_id": rows[0][0],
                "account_ids": [r[7] for r in rows],
                "amounts": posted,
                "d_pdebit": [r[11] if r[11] < 0 else 0 for r in rows],
                "d_pcredit": [-r[11] if r[11] > 0 else 0 for r in rows],
            }
        )
        holds.pop(key)  # a key given twice: the second goes through post_pending (a replay)
    if batch:
        results = (await session.execute(_POST_MANY, {"batch": json.dumps(batch)})).all()
        for item, (status, _id) in zip(batch, results, strict=True):
            if status not in ("created", "replay"):
                raise service.IdempotencyConflict(details={"idempotency_key": item["key"]})
    for key, amount in single:
        await service.post_pending(session=session, idempotency_key=key, amount=amount)
