"""The ledger service: the only code that changes a balance. Never commits.

Contract for other modules (keyword-only):
    transfer(session=, idempotency_key=, kind=, legs=, reference=None, metadata=None, pending=False)
    transfer_many(session=, transfers=[TransferSpec]) -> [transfer id]  (posted; one round trip)
    pull.ledger.bulk.transfer_bulk(session=, idempotency_key=, kind=, legs=, reference=None)
        -> transfer id  (posted; any number of legs in a constant number of set-based statements)
    post_pending(session=, transfer_id= | idempotency_key=, amount=None, legs=None)
    void_pending(session=, transfer_id= | idempotency_key=)
    get_balance(session=, user_id=) -> Balance
    share_holdings(session=, user_id=) -> [(share currency, balance, pending_debits)]
    account_balance(session=, account=) -> int
    trial_balance(session=) -> TrialBalance
    invariant_report(session=) -> LedgerInvariantsRead
A transfer is one round trip to PostgreSQL (the `ledger_apply` function): accounts are created
on first use, locked in id order, checked, and the transfer, its entries and the balances are
written together. Errors raised here leave nothing written. The read side lives beside it
(`reads`: balances and history; `checks`: trial balance and invariants; `portfolio_reads`) and
is re-exported here, so other modules only ever import this service.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pull.ledger import holds
from pull.ledger import repository as repo
from pull.ledger.checks import invariant_report, trial_balance
from pull.ledger.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidTransfer,
    TransferNotFound,
    TransferNotPending,
)
from pull.ledger.portfolio_reads import (  # the portfolio's reads (bulk, money in and out)
    ExternalFlow,
    UserBalances,
    account_owners_after,
    entries_version,
    external_flow_totals,
    external_flows,
    user_balances,
)
from pull.ledger.reads import (  # balances and a user's history
    account_available,
    account_balance,
    currency_holders,
    entry_sums,
    get_balance,
    kind_balances,
    share_holdings,
    statement,
    system_balances,
    transactions,
)
from pull.ledger.schemas import (
    AccountRef,
    Balance,
    Leg,
    TransferRead,
    TrialBalance,
    system_account,
    user_account,
)

__all__ = [
    "AccountRef",
    "Balance",
    "ExternalFlow",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidTransfer",
    "Leg",
    "TransferNotFound",
    "TransferNotPending",
    "TransferRead",
    "TransferSpec",
    "TrialBalance",
    "UserBalances",
    "account_available",
    "account_balance",
    "account_owners_after",
    "currency_holders",
    "entries_version",
    "entry_sums",
    "external_flow_totals",
    "external_flows",
    "get_balance",
    "invariant_report",
    "kind_balances",
    "post_pending",
    "post_pending_many",
    "share_holdings",
    "statement",
    "system_account",
    "system_balances",
    "transactions",
    "transfer",
    "transfer_many",
    "trial_balance",
    "user_account",
    "user_balances",
    "void_pending",
]

MAX_KEY = 200
MAX_LEGS = 64


def _normalize(legs: Sequence[Leg], max_legs: int = MAX_LEGS) -> list[Leg]:
    """Merge legs on the same account, drop zero ones, check the sum per currency."""
    merged: dict[AccountRef, int] = {}
    for leg in legs:
        if not isinstance(leg, Leg):
            raise InvalidTransfer("legs must be Leg values")
        merged[leg.account] = merged.get(leg.account, 0) + leg.amount
    out = [Leg(account, amount) for account, amount in merged.items() if amount != 0]
    if len(out) < 2:
        raise InvalidTransfer("a transfer moves money between at least two accounts")
    if len(out) > max_legs:
        raise InvalidTransfer(f"at most {max_legs} legs")
    sums: dict[str, int] = {}
    for leg in out:
        sums[leg.account.currency] = sums.get(leg.account.currency, 0) + leg.amount
    unbalanced = {c: s for c, s in sums.items() if s != 0}
    if unbalanced:
        raise InvalidTransfer("legs must sum to zero per currency", details=unbalanced)
    return out


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _hash(
    kind: str, legs: Sequence[Leg], reference: str | None, metadata_json: str | None, pending: bool
) -> str:
    body = _canonical(
        [
            kind,
            reference,
            metadata_json,
            pending,
            sorted(
                (
                    str(leg.account.owner_id or ""),
                    leg.account.currency,
                    leg.account.kind,
                    leg.amount,
                )
                for leg in legs
            ),
        ]
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY:
        raise InvalidTransfer(f"idempotency keys are 1 to {MAX_KEY} characters")


def _ref(row: repo.EntryRow) -> AccountRef:
    return AccountRef(owner_id=row.owner_id, kind=row.kind, currency=row.currency)


def _read(
    transfer: repo.TransferRow, entries: Sequence[repo.EntryRow], *, replayed: bool
) -> TransferRead:
    return TransferRead(
        id=transfer.id,
        idempotency_key=transfer.idempotency_key,
        kind=transfer.kind,
        status=transfer.status,
        pending=transfer.pending,
        legs=tuple(Leg(_ref(e), e.amount) for e in entries),
        reference=transfer.reference,
        metadata=transfer.metadata,
        pending_id=transfer.pending_id,
        created_at=transfer.created_at,
        replayed=replayed,
    )


async def _apply(session: AsyncSession, **kwargs: Any) -> repo.Applied:
    """repo.apply, with the database's own refusals as typed errors (the transaction is then
    aborted: the caller's boundary rolls it back)."""
    try:
        return await repo.apply(session, **kwargs)
    except IntegrityError as exc:
        message = str(exc.orig)
        if "user_not_negative" in message:
            raise InsufficientFunds() from exc
        if "fk_ledger_accounts_owner_id_users" in message:
            raise InvalidTransfer("An account's owner is not a user") from exc
        raise


async def _replay(session: AsyncSession, transfer_id: int) -> TransferRead:
    found = await repo.transfer_with_entries(session, transfer_id=transfer_id)
    assert found is not None
    return _read(*found, replayed=True)


async def _insufficient(session: AsyncSession, account_id: int | None) -> InsufficientFunds:
    details: dict[str, Any] | None = None
    if account_id is not None:
        _owner, kind, currency = await repo.account_label(session, account_id)
        details = {"account": kind, "currency": currency}
    return InsufficientFunds(details=details)


async def transfer(
    *,
    session: AsyncSession,
    idempotency_key: str,
    kind: str,
    legs: Sequence[Leg],
    reference: str | None = None,
    metadata: dict[str, Any] | None = None,
    pending: bool = False,
) -> TransferRead:
    """Move money atomically between accounts; a replay of the key returns the first result.

    `pending=True` makes a hold: debits are reserved at once (they count against the available
    balance), credits arrive only when the hold is posted; see post_pending / void_pending.
    """
    _check_key(idempotency_key)
    if not kind or len(kind) > 64:
        raise InvalidTransfer("kind is 1 to 64 characters")
    if reference is not None and len(reference) > 200:
        raise InvalidTransfer("reference is at most 200 characters")
    norm = _normalize(legs)
    metadata_json = _canonical(metadata) if metadata is not None else None
    content_hash = _hash(kind, norm, reference, metadata_json, pending)
    amounts = [leg.amount for leg in norm]
    if pending:
        d_balance = [0] * len(norm)
        d_pdebit = [-a if a < 0 else 0 for a in amounts]
        d_pcredit = [a if a > 0 else 0 for a in amounts]
    else:
        d_balance = amounts
        d_pdebit = d_pcredit = [0] * len(norm)
    applied = await _apply(
        session,
        key=idempotency_key,
        kind=kind,
        reference=reference,
        metadata_json=metadata_json,
        content_hash=content_hash,
        pending=pending,
        status="pending" if pending else "posted",
        pending_id=None,
        owners=[leg.account.owner_id for leg in norm],
        currencies=[leg.account.currency for leg in norm],
        kinds=[leg.account.kind for leg in norm],
        account_ids=None,
        amounts=amounts,
        d_balance=d_balance,
        d_pdebit=d_pdebit,
        d_pcredit=d_pcredit,
    )
    if applied.status == "created":
        assert applied.transfer_id is not None
        return TransferRead(
            id=applied.transfer_id,
            idempotency_key=idempotency_key,
            kind=kind,
            status="pending" if pending else "posted",
            pending=pending,
            legs=tuple(norm),
            reference=reference,
            metadata=json.loads(metadata_json) if metadata_json is not None else None,
            created_at=applied.created_at,
        )
    if applied.status == "replay":
        assert applied.transfer_id is not None
        return await _replay(session, applied.transfer_id)
    if applied.status == "conflict":
        raise IdempotencyConflict(details={"idempotency_key": idempotency_key})
    raise await _insufficient(session, applied.account_id)


@dataclass(frozen=True, slots=True)
class TransferSpec:
    """One posted transfer of a `transfer_many` batch (the arguments of `transfer`)."""

    idempotency_key: str
    kind: str
    legs: Sequence[Leg]
    reference: str | None = None
    metadata: dict[str, Any] | None = None


MAX_BATCH = 500


async def transfer_many(*, session: AsyncSession, transfers: Sequence[TransferSpec]) -> list[int]:
    """Posted transfers in one round trip per MAX_BATCH, each exactly as `transfer` would
    make it (same checks, keys, hashes, locks); the ids in order (a replay gives the first
    transfer's id). For batch jobs that make many small transfers in one transaction (the
    rewards earning consumer). Give them in a stable order (e.g. by account owner) so that
    concurrent batches lock accounts in the same order. An error raises after earlier
    transfers of the batch were applied in the transaction: the caller's boundary must roll
    it back (as it does for any exception)."""
    ids: list[int] = []
    for start in range(0, len(transfers), MAX_BATCH):
        chunk = transfers[start : start + MAX_BATCH]
        batch = []
        for t in chunk:
            _check_key(t.idempotency_key)
            if not t.kind or len(t.kind) > 64:
                raise InvalidTransfer("kind is 1 to 64 characters")
            if t.reference is not None and len(t.reference) > 200:
                raise InvalidTransfer("reference is at most 200 characters")
            norm = _normalize(t.legs)
            metadata_json = _canonical(t.metadata) if t.metadata is not None else None
            item: dict[str, Any] = {
                "key": t.idempotency_key,
                "kind": t.kind,
                "reference": t.reference,
                "hash": _hash(t.kind, norm, t.reference, metadata_json, False),
                "owners": [str(g.account.owner_id) if g.account.owner_id else None for g in norm],
                "currencies": [g.account.currency for g in norm],
                "kinds": [g.account.kind for g in norm],
                "amounts": [g.amount for g in norm],
            }
            if metadata_json is not None:
                item["metadata"] = json.loads(metadata_json)
            batch.append(item)
        try:
            applied = await repo.apply_many(session, json.dumps(batch))
        except IntegrityError as exc:
            if "user_not_negative" in str(exc.orig):
                raise InsufficientFunds() from exc
            raise
        for t, a in zip(chunk, applied, strict=True):
            if a.status in ("created", "replay"):
                assert a.transfer_id is not None
                ids.append(a.transfer_id)
            elif a.status == "conflict":
                raise IdempotencyConflict(details={"idempotency_key": t.idempotency_key})
            else:
                raise await _insufficient(session, a.account_id)
    return ids


async def _resolve(
    session: AsyncSession,
    *,
    transfer_id: int | None,
    idempotency_key: str | None,
    action: str,
    amount: int | None,
    legs: Sequence[Leg] | None,
) -> TransferRead:
    if (transfer_id is None) == (idempotency_key is None):
        raise InvalidTransfer("give exactly one of transfer_id and idempotency_key")
    found = await repo.transfer_with_entries(
        session, transfer_id=transfer_id, idempotency_key=idempotency_key, lock=True
    )
    if found is None:
        raise TransferNotFound()
    hold, entries = found
    if not hold.pending or hold.pending_id is not None:
        raise TransferNotPending("Only a pending transfer can be posted or voided")

    reserved = {_ref(e): e for e in entries}
    if action == "void":
        if amount is not None or legs is not None:
            raise InvalidTransfer("a void takes no amount")
        posted: list[int] = [0] * len(entries)
    elif legs is not None:
        if amount is not None:
            raise InvalidTransfer("give amount or legs, not both")
        wanted: dict[AccountRef, int] = {}
        for leg in legs:
            wanted[leg.account] = wanted.get(leg.account, 0) + leg.amount
        unknown = [a.label() for a in wanted if a not in reserved]
        if unknown:
            raise InvalidTransfer("legs name accounts the hold does not", details=unknown)
        posted = [wanted.get(_ref(e), 0) for e in entries]
    elif amount is None:
        posted = [e.amount for e in entries]
    else:
        if len(entries) != 2:
            raise InvalidTransfer("a partial amount needs a two-leg hold; give legs instead")
        if type(amount) is not int or amount < 0:
            raise InvalidTransfer("amount is a non-negative integer")
        posted = [amount if e.amount > 0 else -amount for e in entries]
    for e, p in zip(entries, posted, strict=True):
        if p != 0 and ((p > 0) != (e.amount > 0) or abs(p) > abs(e.amount)):
            raise InvalidTransfer(
                "a posted leg keeps its sign and is at most the amount held",
                details={"account": _ref(e).label(), "held": e.amount, "posted": p},
            )
    sums: dict[str, int] = {}
    for e, p in zip(entries, posted, strict=True):
        sums[e.currency] = sums.get(e.currency, 0) + p
    if any(sums.values()):
        raise InvalidTransfer("posted legs must sum to zero per currency", details=sums)

    key = f"{hold.idempotency_key}:{action}"
    posted_legs = [Leg(_ref(e), p) for e, p in zip(entries, posted, strict=True) if p != 0]
    content_hash = _hash(hold.kind + ":" + action, posted_legs, hold.reference, None, False)
    if hold.status != "pending":
        done = await repo.transfer_with_entries(session, idempotency_key=key)
        if done is not None and done[0].content_hash == content_hash:
            return _read(*done, replayed=True)
        raise TransferNotPending(details={"transfer_id": hold.id, "status": hold.status})

    applied = await _apply(
        session,
        key=key,
        kind=hold.kind,
        reference=hold.reference,
        metadata_json=None,
        content_hash=content_hash,
        pending=False,
        status="posted" if action == "post" else "voided",
        pending_id=hold.id,
        owners=None,
        currencies=None,
        kinds=None,
        account_ids=[e.account_id for e in entries],
        amounts=posted,
        d_balance=posted,
        d_pdebit=[e.amount if e.amount < 0 else 0 for e in entries],
        d_pcredit=[-e.amount if e.amount > 0 else 0 for e in entries],
    )
    if applied.status == "created":
        assert applied.transfer_id is not None
        return TransferRead(
            id=applied.transfer_id,
            idempotency_key=key,
            kind=hold.kind,
            status="posted" if action == "post" else "voided",
            pending=False,
            legs=tuple(posted_legs),
            reference=hold.reference,
            pending_id=hold.id,
            created_at=applied.created_at,
        )
    if applied.status == "replay":
        assert applied.transfer_id is not None
        return await _replay(session, applied.transfer_id)
    if applied.status == "conflict":
        raise IdempotencyConflict(details={"idempotency_key": key})
    raise await _insufficient(session, applied.account_id)  # pragma: no cover - cannot happen


async def post_pending(
    *,
    session: AsyncSession,
    transfer_id: int | None = None,
    idempotency_key: str | None = None,
    amount: int | None = None,
    legs: Sequence[Leg] | None = None,
) -> TransferRead:
    """Post a hold in full (no amount), in part (`amount` of a two-leg hold, or explicit `legs`
    no larger than held, same signs). What is not posted is released. Posting twice with the
    same amounts returns the first posting; anything else on a resolved hold is 409."""
    return await _resolve(
        session,
        transfer_id=transfer_id,
        idempotency_key=idempotency_key,
        action="post",
        amount=amount,
        legs=legs,
    )


async def post_pending_many(*, session: AsyncSession, posts: Sequence[tuple[str, int]]) -> None:
    """Post many two-leg holds, each `(idempotency_key, amount)`, as `post_pending` would one
    by one, in two round trips for the batch (`holds.py`)."""
    await holds.post_many(session, posts)


def content_hash(kind: str, legs: Sequence[Leg], reference: str | None) -> str:
    """The content hash of a posted transfer without metadata (what a replay compares)."""
    return _hash(kind, legs, reference, None, False)


async def void_pending(
    *, session: AsyncSession, transfer_id: int | None = None, idempotency_key: str | None = None
) -> TransferRead:
    """Release a hold entirely. Voiding a voided hold returns the first void."""
    return await _resolve(
        session,
        transfer_id=transfer_id,
        idempotency_key=idempotency_key,
        action="void",
        amount=None,
        legs=None,
    )


async def get_transfer(
    *, session: AsyncSession, transfer_id: int | None = None, idempotency_key: str | None = None
) -> TransferRead | None:
    found = await repo.transfer_with_entries(
        session, transfer_id=transfer_id, idempotency_key=idempotency_key
    )
    return None if found is None else _read(*found, replayed=False)
