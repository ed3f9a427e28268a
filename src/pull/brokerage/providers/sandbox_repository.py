"""All SQL of the sandbox broker (its own tables only)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pull.brokerage.models import (
    SandboxAccount,
    SandboxEvent,
    SandboxJournal,
    SandboxOrder,
    SandboxPosition,
    SandboxQuote,
    SandboxState,
)
from pull.kit.db import utcnow

# Two advisory locks (docs/brokerage.md, "The sandbox's locks"):
# - WORLD: orders and journals take it shared (they lock only their own rows, in one order);
#   what touches many accounts at once (the clock, quotes, cancel, replace, corrections,
#   account and firm creation) takes it exclusive, so row locks never wait in a cycle;
# - EVENTS: taken by a transaction only at its end, to insert its trade events just before
#   commit, so events commit in seq order and `since_id` never skips one, while the lock is
#   held for one insert, not the whole transaction.
WORLD_LOCK = 7_310_017
EVENTS_LOCK = 7_310_019


async def lock_world(session: AsyncSession, *, exclusive: bool) -> None:
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    await session.execute(text(f"SELECT {fn}(:k)"), {"k": WORLD_LOCK})


_INSERT_EVENTS = text(
    "WITH lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(:k)) "
    "INSERT INTO brokerage_sandbox_events (id, account_id, payload, created_at) "
    "SELECT u.id, u.account_id, CAST(u.payload AS jsonb), :at FROM lock, "
    " unnest(CAST(:ids AS text[]), CAST(:accounts AS uuid[]), CAST(:payloads AS text[])) "
    " WITH ORDINALITY AS u(id, account_id, payload, n) "
    "ORDER BY u.n"
)


async def insert_events(
    session: AsyncSession, rows: list[tuple[str, uuid.UUID, dict[str, Any]]]
) -> None:
    """The transaction's events `(id, account id, payload)`, in order, under EVENTS_LOCK
    (held until commit; taken in the same statement, before any seq is drawn)."""
    await session.execute(
        _INSERT_EVENTS,
        {
            "k": EVENTS_LOCK,
            "ids": [r[0] for r in rows],
            "accounts": [r[1] for r in rows],
            "payloads": [json.dumps(r[2], separators=(",", ":")) for r in rows],
            "at": utcnow(),
        },
    )


async def accounts_locked(
    session: AsyncSession, ids: list[uuid.UUID]
) -> dict[uuid.UUID, SandboxAccount]:
    """Lock accounts FOR UPDATE in id order (two journals in opposite directions between the
    same accounts cannot deadlock)."""
    stmt = (
        select(SandboxAccount)
        .where(SandboxAccount.id.in_(ids))
        .order_by(SandboxAccount.id)
        .with_for_update()
    )
    return {a.id: a for a in (await session.scalars(stmt)).all()}


async def ensure_quote(session: AsyncSession, row: SandboxQuote) -> None:
    await session.execute(
        pg_insert(SandboxQuote)
        .values(
            symbol=row.symbol,
            bid=row.bid,
            ask=row.ask,
            bid_size=row.bid_size,
            ask_size=row.ask_size,
            updated_at=row.updated_at,
        )
        .on_conflict_do_nothing(index_elements=["symbol"])
    )


async def account(
    session: AsyncSession, account_id: uuid.UUID, *, lock: bool = False
) -> SandboxAccount | None:
    stmt = select(SandboxAccount).where(SandboxAccount.id == account_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def state(session: AsyncSession, key: str) -> Any:
    return await session.scalar(select(SandboxState.value).where(SandboxState.key == key))


async def set_state(session: AsyncSession, key: str, value: Any) -> None:
    await session.execute(
        text(
            "INSERT INTO brokerage_sandbox_state (key, value) VALUES (:k, CAST(:v AS jsonb)) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ),
        {"k": key, "v": _json(value)},
    )


def _json(value: Any) -> str:
    return json.dumps(value)


def add(session: AsyncSession, row: object) -> None:
    session.add(row)


async def account_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(SandboxAccount)) or 0)


async def order(
    session: AsyncSession, order_id: uuid.UUID, *, lock: bool = False
) -> SandboxOrder | None:
    stmt = select(SandboxOrder).where(SandboxOrder.id == order_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def order_by_client_id(
    session: AsyncSession, account_id: uuid.UUID, client_order_id: str
) -> SandboxOrder | None:
    stmt = select(SandboxOrder).where(
        SandboxOrder.account_id == account_id, SandboxOrder.client_order_id == client_order_id
    )
    return (await session.scalars(stmt)).one_or_none()


async def orders(
    session: AsyncSession, account_id: uuid.UUID, *, after: dt.datetime | None, limit: int
) -> list[SandboxOrder]:
    stmt = select(SandboxOrder).where(SandboxOrder.account_id == account_id)
    if after is not None:
        stmt = stmt.where(SandboxOrder.created_at > after)
    stmt = stmt.order_by(SandboxOrder.created_at.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


async def resting(
    session: AsyncSession, *, symbol: str | None = None, statuses: tuple[str, ...] = ()
) -> list[SandboxOrder]:
    stmt = select(SandboxOrder).where(SandboxOrder.resting.is_(True))
    if symbol is not None:
        stmt = stmt.where(SandboxOrder.symbol == symbol)
    if statuses:
        stmt = stmt.where(SandboxOrder.status.in_(statuses))
    stmt = stmt.order_by(SandboxOrder.created_at, SandboxOrder.id).with_for_update()
    return list((await session.scalars(stmt)).all())


async def sell_reserved(session: AsyncSession, account_id: uuid.UUID, symbol: str) -> Decimal:
    """Shares already promised to open sell orders."""
    value = await session.scalar(
        select(func.coalesce(func.sum(SandboxOrder.qty - SandboxOrder.filled_qty), 0)).where(
            SandboxOrder.account_id == account_id,
            SandboxOrder.symbol == symbol,
            SandboxOrder.side == "sell",
            SandboxOrder.resting.is_(True),
        )
    )
    return Decimal(value or 0)


async def reserved_cash(session: AsyncSession, account_id: uuid.UUID) -> Decimal:
    value = await session.scalar(
        select(func.coalesce(func.sum(SandboxOrder.reserved_cash), 0)).where(
            SandboxOrder.account_id == account_id, SandboxOrder.resting.is_(True)
        )
    )
    return Decimal(value or 0)


async def position(
    session: AsyncSession, account_id: uuid.UUID, symbol: str, *, lock: bool = False
) -> SandboxPosition | None:
    """The position (`lock`: FOR UPDATE, its attributes re-read: `add_to_position` may have
    changed the row under a loaded object)."""
    stmt = select(SandboxPosition).where(
        SandboxPosition.account_id == account_id, SandboxPosition.symbol == symbol
    )
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


_ADD_TO_POSITION = text(
    "INSERT INTO brokerage_sandbox_positions AS p (account_id, symbol, asset_class, qty, cost) "
    "VALUES (:a, :s, :c, :q, :cost) "
    "ON CONFLICT (account_id, symbol) DO UPDATE "
    "SET qty = p.qty + EXCLUDED.qty, cost = p.cost + EXCLUDED.cost RETURNING p.qty"
)


async def add_to_position(
    session: AsyncSession,
    account_id: uuid.UUID,
    symbol: str,
    asset_class: str,
    *,
    qty: Decimal,
    cost: Decimal,
) -> Decimal:
    """A buy's shares and cost added to the position (created on first use) in one
    statement; the new qty. Pending changes to a loaded position are flushed first (so the
    statement never runs under one that a later flush would write back)."""
    if any(isinstance(o, SandboxPosition) for o in (*session.new, *session.dirty)):
        await session.flush()
    found = await session.execute(
        _ADD_TO_POSITION, {"a": account_id, "s": symbol, "c": asset_class, "q": qty, "cost": cost}
    )
    return Decimal(found.scalar_one())


async def positions(session: AsyncSession, account_id: uuid.UUID) -> list[SandboxPosition]:
    stmt = (
        select(SandboxPosition)
        .where(SandboxPosition.account_id == account_id, SandboxPosition.qty > 0)
        .order_by(SandboxPosition.symbol)
    )
    return list((await session.scalars(stmt)).all())


async def quote(session: AsyncSession, symbol: str, *, lock: bool = False) -> SandboxQuote | None:
    stmt = select(SandboxQuote).where(SandboxQuote.symbol == symbol)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def move_cash(session: AsyncSession, account_id: uuid.UUID, delta: Decimal) -> None:
    await session.execute(
        update(SandboxAccount)
        .where(SandboxAccount.id == account_id)
        .values(cash=SandboxAccount.cash + delta)
    )


async def credit_cash(session: AsyncSession, account_id: uuid.UUID, amount: Decimal) -> bool:
    """Credit `amount` in one statement (the row stays locked); False if no such account."""
    found = await session.execute(
        update(SandboxAccount)
        .where(SandboxAccount.id == account_id)
        .values(cash=SandboxAccount.cash + amount)
        .returning(SandboxAccount.id)
    )
    return found.first() is not None


async def take_cash(session: AsyncSession, account_id: uuid.UUID, amount: Decimal) -> bool:
    """Debit `amount` if the account has it, in one statement; False if not (or no account)."""
    found = await session.execute(
        update(SandboxAccount)
        .where(SandboxAccount.id == account_id, SandboxAccount.cash >= amount)
        .values(cash=SandboxAccount.cash - amount)
        .returning(SandboxAccount.id)
    )
    return found.first() is not None


def add_journal(session: AsyncSession, journal: SandboxJournal) -> None:
    session.add(journal)


async def journals(
    session: AsyncSession,
    *,
    from_account: uuid.UUID,
    to_account: uuid.UUID,
    since: dt.datetime,
    description: str | None = None,
    limit: int = 1000,
) -> list[SandboxJournal]:
    stmt = select(SandboxJournal).where(
        SandboxJournal.from_account == from_account,
        SandboxJournal.to_account == to_account,
        SandboxJournal.created_at >= since,
    )
    if description is not None:
        stmt = stmt.where(SandboxJournal.description == description)
    stmt = stmt.order_by(SandboxJournal.created_at).limit(limit)
    return list((await session.scalars(stmt)).all())


async def event_seq(session: AsyncSession, event_id: str) -> int | None:
    return await session.scalar(select(SandboxEvent.seq).where(SandboxEvent.id == event_id))


async def first_seq_since(session: AsyncSession, since: dt.datetime) -> int:
    value = await session.scalar(
        select(func.min(SandboxEvent.seq)).where(SandboxEvent.created_at >= since)
    )
    if value is None:
        return await last_seq(session)
    return int(value) - 1


async def last_seq(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(SandboxEvent.seq), 0))) or 0)


async def payloads_after(
    session: AsyncSession, seq: int, limit: int
) -> list[tuple[int, dict[str, Any]]]:
    """(seq, payload) of the events after `seq` (columns, no ORM objects: the stream's read)."""
    stmt = (
        select(SandboxEvent.seq, SandboxEvent.payload)
        .where(SandboxEvent.seq > seq)
        .order_by(SandboxEvent.seq)
        .limit(limit)
    )
    return [(int(r[0]), r[1]) for r in (await session.execute(stmt)).all()]


async def flush(session: AsyncSession) -> None:
    await session.flush()
