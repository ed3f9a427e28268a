"""Ledger routes: read-only views of the caller's money, and the admin trial balance."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from pull.identity.deps import AdminUser, CurrentUser
from pull.kit.db import SessionDep
from pull.kit.errors import BadRequest
from pull.kit.pagination import clamp_limit, decode_cursor, encode_cursor
from pull.kit.ratelimit import general
from pull.ledger import service
from pull.ledger.schemas import (
    AccountMismatchRead,
    BalanceRead,
    CurrencyTotalRead,
    LedgerInvariantsRead,
    Transaction,
    TransactionPage,
    TransactionRead,
    TrialBalanceRead,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    429: {"description": "Rate limited"},
}

router = APIRouter(prefix="/api/v1", tags=["ledger"], responses=_ERRORS)
admin_router = APIRouter(prefix="/api/admin/ledger", tags=["admin"], responses=_ERRORS)
relaxed = [Depends(general)]


@router.get(
    "/balance",
    response_model=BalanceRead,
    dependencies=relaxed,
    summary="The caller's USD balance in cents (definitions in docs/money.md)",
)
async def balance(user: CurrentUser, session: SessionDep) -> BalanceRead:
    b = await service.get_balance(session=session, user_id=user.id)
    return BalanceRead(
        available=b.available,
        held=b.held,
        pending_deposits=b.pending_deposits,
        withdrawable=b.withdrawable,
        total=b.total,
    )


def _tx(t: Transaction) -> TransactionRead:
    return TransactionRead(
        id=t.entry_id,
        transfer_id=t.transfer_id,
        kind=t.kind,
        account=t.account,
        currency=t.currency,
        amount=t.amount,
        balance_after=t.balance_after,
        status=t.status,
        pending=t.pending,
        reference=t.reference,
        created_at=t.created_at,
    )


@router.get(
    "/ledger/transactions",
    response_model=TransactionPage,
    dependencies=relaxed,
    summary="The caller's ledger entries, newest first (cursor-paginated)",
)
async def list_transactions(
    user: CurrentUser,
    session: SessionDep,
    cursor: Annotated[str | None, Query(description="From the previous page")] = None,
    limit: Annotated[int | None, Query(description="1 to 200, default 50")] = None,
    kind: Annotated[str | None, Query(max_length=64, description="Only this kind")] = None,
) -> TransactionPage:
    size = clamp_limit(limit)
    after = decode_cursor(cursor)
    before_id: int | None = None
    if after is not None:
        value = after.get("id")
        if not isinstance(value, int):
            raise BadRequest("Invalid cursor", code="INVALID_CURSOR")
        before_id = value
    rows = await service.transactions(
        session=session, user_id=user.id, before_id=before_id, limit=size + 1, kind=kind
    )
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = encode_cursor({"id": rows[-1].entry_id}) if more and rows else None
    return TransactionPage(items=[_tx(r) for r in rows], cursor=next_cursor)


def _bound(value: dt.date | None, default: dt.datetime) -> dt.datetime:
    if value is None:
        return default
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def _cents(amount: int) -> str:
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 100)
    return f"{sign}{whole}.{cents:02d}"


@router.get(
    "/ledger/statement.csv",
    dependencies=relaxed,
    summary="The caller's entries from `from` (inclusive) to `to` (inclusive), as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def statement_csv(
    user: CurrentUser,
    session: SessionDep,
    from_: Annotated[dt.date | None, Query(alias="from", description="YYYY-MM-DD (UTC)")] = None,
    to: Annotated[dt.date | None, Query(description="YYYY-MM-DD (UTC), inclusive")] = None,
) -> Response:
    now = dt.datetime.now(dt.UTC)
    try:
        end = _bound(to, now) + (
            dt.timedelta(days=1) if to is not None else dt.timedelta(seconds=1)
        )
        start = _bound(from_, end - dt.timedelta(days=31))
    except OverflowError:
        raise BadRequest(
            "Dates must lie between 0001-02-01 and 9999-12-30", code="INVALID_RANGE"
        ) from None
    if start >= end:
        raise BadRequest("`from` must not be after `to`", code="INVALID_RANGE")
    if end - start > dt.timedelta(days=366):
        raise BadRequest("A statement covers at most 366 days", code="INVALID_RANGE")
    rows = await service.statement(session=session, user_id=user.id, start=start, end=end)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "date",
            "entry_id",
            "transfer_id",
            "kind",
            "account",
            "currency",
            "amount",
            "amount_minor",
            "balance_after",
            "status",
            "reference",
        ]
    )
    for t in rows:
        money = t.currency == "USD"
        writer.writerow(
            [
                t.created_at.isoformat(),
                t.entry_id,
                t.transfer_id,
                t.kind,
                t.account,
                t.currency,
                _cents(t.amount) if money else t.amount,
                t.amount,
                _cents(t.balance_after) if money else t.balance_after,
                t.status,
                t.reference or "",
            ]
        )
    name = f"statement-{start.date().isoformat()}-{(end - dt.timedelta(seconds=1)).date()}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@admin_router.get(
    "/trial-balance",
    response_model=TrialBalanceRead,
    summary="Per currency the sum over all accounts (zero), and every account against its entries",
    responses={403: {"description": "Administrators only"}},
)
async def trial_balance(admin: AdminUser, session: SessionDep) -> TrialBalanceRead:
    tb = await service.trial_balance(session=session)
    return TrialBalanceRead(
        balanced=tb.balanced,
        currencies=[
            CurrencyTotalRead(
                currency=c.currency,
                balance=c.balance,
                pending_debits=c.pending_debits,
                pending_credits=c.pending_credits,
                accounts=c.accounts,
                balanced=c.balanced,
            )
            for c in tb.currencies
        ],
        mismatches=[AccountMismatchRead(**asdict(m)) for m in tb.mismatches],
        unbalanced_transfers=tb.unbalanced_transfers,
    )


def routers() -> list[APIRouter]:
    return [router, admin_router]


@admin_router.get(
    "/invariants",
    response_model=LedgerInvariantsRead,
    summary="Per account class: the accounts that must never go negative, and those that are",
    responses={403: {"description": "Administrators only"}},
)
async def invariants(admin: AdminUser, session: SessionDep) -> LedgerInvariantsRead:
    return await service.invariant_report(session=session)
