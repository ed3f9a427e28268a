"""All SQL of the funding module. Nothing here commits."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pull.funding.models import (
    BankAccount,
    Deposit,
    FundingStatusChange,
    PlaidCursor,
    PlaidTransferEvent,
    Withdrawal,
)

T = TypeVar("T", Deposit, Withdrawal)

# --- bank accounts ----------------------------------------------------------------------------


async def add(session: AsyncSession, row: Any) -> None:
    session.add(row)
    await session.flush()


async def bank_account(
    session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID | None = None
) -> BankAccount | None:
    stmt = select(BankAccount).where(BankAccount.id == account_id)
    if user_id is not None:
        stmt = stmt.where(BankAccount.user_id == user_id)
    return (await session.scalars(stmt)).one_or_none()


async def bank_accounts(session: AsyncSession, user_id: uuid.UUID) -> Sequence[BankAccount]:
    return (
        await session.scalars(
            select(BankAccount)
            .where(BankAccount.user_id == user_id, BankAccount.status == "active")
            .order_by(BankAccount.created_at)
        )
    ).all()


async def item_in_use(session: AsyncSession, item_id: str) -> bool:
    """Whether an active bank account still uses the Plaid item."""
    found = await session.scalar(
        select(BankAccount.id)
        .where(BankAccount.item_id == item_id, BankAccount.status == "active")
        .limit(1)
    )
    return found is not None


# --- deposits and withdrawals -------------------------------------------------------------------


async def get(
    session: AsyncSession, model: type[T], subject_id: uuid.UUID, *, lock: bool = False
) -> T | None:
    stmt = select(model).where(model.id == subject_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def subject_user(
    session: AsyncSession, model: type[T], subject_id: uuid.UUID
) -> uuid.UUID | None:
    """The owner of a deposit or withdrawal, read without a lock (to take the user lock first)."""
    value = await session.scalar(select(model.user_id).where(model.id == subject_id))
    return None if value is None else uuid.UUID(str(value))


async def lock_user_funds(session: AsyncSession, user_id: uuid.UUID) -> None:
    """The per-user funding lock (docs/money.md, "One lock per user"): a transaction-scoped
    advisory lock every funding decision of the user takes first, before any row lock."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 43))"),
        {"k": f"funding:user:{user_id}"},
    )


async def page(
    session: AsyncSession,
    model: type[T],
    user_id: uuid.UUID,
    *,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[T]:
    stmt = select(model).where(model.user_id == user_id)
    if before is not None:
        stmt = stmt.where(
            (model.created_at < before[0])
            | ((model.created_at == before[0]) & (model.id < before[1]))
        )
    stmt = stmt.order_by(model.created_at.desc(), model.id.desc()).limit(limit)
    return (await session.scalars(stmt)).all()


async def by_status(session: AsyncSession, model: type[T], status: str, limit: int) -> Sequence[T]:
    return (
        await session.scalars(
            select(model).where(model.status == status).order_by(model.created_at).limit(limit)
        )
    ).all()


async def set_status(
    session: AsyncSession,
    model: type[T],
    row: T,
    status: str,
    *,
    detail: str | None = None,
) -> None:
    row.status = status
    session.add(
        FundingStatusChange(
            subject_type="deposit" if model is Deposit else "withdrawal",
            subject_id=row.id,
            status=status,
            detail=detail,
        )
    )
    await session.flush()


async def history(
    session: AsyncSession, subject_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[FundingStatusChange]]:
    out: dict[uuid.UUID, list[FundingStatusChange]] = {i: [] for i in subject_ids}
    if not subject_ids:
        return out
    rows = await session.scalars(
        select(FundingStatusChange)
        .where(FundingStatusChange.subject_id.in_(subject_ids))
        .order_by(FundingStatusChange.id)
    )
    for row in rows:
        out[row.subject_id].append(row)
    return out


async def subject_by_transfer(
    session: AsyncSession, plaid_transfer_id: str
) -> tuple[str, uuid.UUID] | None:
    row = (
        await session.execute(
            text(
                "SELECT 'deposit', id FROM deposits WHERE plaid_transfer_id = :t "
                "UNION ALL SELECT 'withdrawal', id FROM withdrawals WHERE plaid_transfer_id = :t"
            ),
            {"t": plaid_transfer_id},
        )
    ).first()
    return None if row is None else (str(row[0]), row[1])


async def lock_transfer(session: AsyncSession, plaid_transfer_id: str) -> None:
    """Serialize the webhook and the activity that records a transfer id (see service)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:t, 42))"), {"t": plaid_transfer_id}
    )


async def set_plaid_transfer(
    session: AsyncSession, model: type[T], subject_id: uuid.UUID, transfer_id: str
) -> None:
    await session.execute(
        update(model).where(model.id == subject_id).values(plaid_transfer_id=transfer_id)
    )


# --- Plaid events -------------------------------------------------------------------------------


async def lock_cursor(session: AsyncSession) -> int:
    await session.execute(
        insert(PlaidCursor).values(name="transfer_events", after_id=0).on_conflict_do_nothing()
    )
    cursor = (
        await session.scalars(
            select(PlaidCursor).where(PlaidCursor.name == "transfer_events").with_for_update()
        )
    ).one()
    return cursor.after_id


async def save_cursor(session: AsyncSession, after_id: int) -> None:
    await session.execute(
        update(PlaidCursor).where(PlaidCursor.name == "transfer_events").values(after_id=after_id)
    )


async def store_event(
    session: AsyncSession,
    *,
    event_id: int,
    transfer_id: str,
    event_type: str,
    payload: dict[str, Any],
) -> bool:
    """True if the event is new (Plaid event ids are unique)."""
    result = await session.execute(
        insert(PlaidTransferEvent)
        .values(event_id=event_id, transfer_id=transfer_id, event_type=event_type, payload=payload)
        .on_conflict_do_nothing()
        .returning(PlaidTransferEvent.event_id)
    )
    return result.scalar_one_or_none() is not None


async def events_for(session: AsyncSession, transfer_id: str) -> Sequence[PlaidTransferEvent]:
    return (
        await session.scalars(
            select(PlaidTransferEvent)
            .where(PlaidTransferEvent.transfer_id == transfer_id)
            .order_by(PlaidTransferEvent.event_id)
        )
    ).all()


async def count_events(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(PlaidTransferEvent)) or 0)
