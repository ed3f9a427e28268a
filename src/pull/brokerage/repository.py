"""All SQL of the brokerage module (PULL's side; the sandbox's is in providers/)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import BindParameter, String, any_, bindparam, func, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.dialects.postgresql import UUID as PGUUID
from sqlalchemy.ext.asyncio import AsyncSession

from pull.brokerage.models import (
    BrokerageAccount,
    BrokerageAlert,
    BrokerageCursor,
    BrokerageEvent,
    BrokerageExecution,
    BrokerageJournal,
    BrokerageOrder,
    BrokeragePosition,
)
from pull.kit.db import utcnow

TERMINAL = ("filled", "canceled", "expired", "rejected", "replaced")
BATCH = "brokerage_batch"  # session.info key while the consumer applies a batch of events


@dataclass
class Batch:
    """The rows a batch of trade events needs, read (and locked) in a few statements before
    it is applied in one transaction, and the executions it records, inserted in one
    statement at its end (`events.apply_batch`). While a session has one (`session.info`),
    `position`, `journal` and `claim_execution` use it and `flush` waits for the end; a fill
    that completes its order leaves the hold's post to the batch's end (`fills._apply_fill`)."""

    positions: dict[tuple[uuid.UUID, str], BrokeragePosition] = field(default_factory=dict)
    journals: dict[str, BrokerageJournal | None] = field(default_factory=dict)
    executions: list[dict[str, Any]] = field(default_factory=list)
    # holds to post at the end, (ledger key, cents): one ledger call for the batch
    posts: list[tuple[str, int]] = field(default_factory=list)


def batch_of(session: AsyncSession) -> Batch | None:
    found = session.info.get(BATCH)
    return found if isinstance(found, Batch) else None


async def account(
    session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False
) -> BrokerageAccount | None:
    stmt = select(BrokerageAccount).where(BrokerageAccount.user_id == user_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def lock_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Serialize one user's brokerage writes (account opening, order intake)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(7310018, hashtext(:u))"), {"u": str(user_id)}
    )


async def accounts_page(
    session: AsyncSession, *, after: uuid.UUID | None, limit: int
) -> list[BrokerageAccount]:
    stmt = select(BrokerageAccount).order_by(BrokerageAccount.user_id).limit(limit)
    if after is not None:
        stmt = stmt.where(BrokerageAccount.user_id > after)
    return list((await session.scalars(stmt)).all())


def add(session: AsyncSession, row: object) -> None:
    session.add(row)
    batch = batch_of(session)
    if batch is not None:
        if isinstance(row, BrokeragePosition):
            batch.positions[(row.user_id, row.symbol)] = row
        elif isinstance(row, BrokerageJournal):
            batch.journals[row.key] = row


async def flush(session: AsyncSession) -> None:
    if batch_of(session) is not None:
        return  # the batch flushes once, at its end
    await session.flush()


async def order(
    session: AsyncSession,
    order_id: uuid.UUID,
    *,
    user_id: uuid.UUID | None = None,
    lock: bool = False,
) -> BrokerageOrder | None:
    stmt = select(BrokerageOrder).where(BrokerageOrder.id == order_id)
    if user_id is not None:
        stmt = stmt.where(BrokerageOrder.user_id == user_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def order_by_client_id(
    session: AsyncSession, user_id: uuid.UUID, client_order_id: str
) -> BrokerageOrder | None:
    stmt = select(BrokerageOrder).where(
        BrokerageOrder.user_id == user_id, BrokerageOrder.client_order_id == client_order_id
    )
    return (await session.scalars(stmt)).one_or_none()


async def order_by_broker_id(
    session: AsyncSession, broker_order_id: str, *, lock: bool = False
) -> BrokerageOrder | None:
    stmt = select(BrokerageOrder).where(BrokerageOrder.broker_order_id == broker_order_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def orders_page(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
    status: str | None = None,
    symbol: str | None = None,
) -> list[BrokerageOrder]:
    stmt = select(BrokerageOrder).where(BrokerageOrder.user_id == user_id)
    if status == "open":
        stmt = stmt.where(BrokerageOrder.status.not_in(TERMINAL))
    elif status == "closed":
        stmt = stmt.where(BrokerageOrder.status.in_(TERMINAL))
    if symbol:
        stmt = stmt.where(BrokerageOrder.symbol == symbol)
    if before is not None:
        stmt = stmt.where(tuple_(BrokerageOrder.created_at, BrokerageOrder.id) < before)
    stmt = stmt.order_by(BrokerageOrder.created_at.desc(), BrokerageOrder.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


async def open_orders(
    session: AsyncSession, *, older_than: dt.datetime, limit: int
) -> list[BrokerageOrder]:
    """Orders the broker may still change (or whose settlement is pending), oldest first."""
    stmt = (
        select(BrokerageOrder)
        .where(
            or_(BrokerageOrder.status.not_in(TERMINAL), BrokerageOrder.settled.is_(False)),
            BrokerageOrder.updated_at < older_than,
        )
        .order_by(BrokerageOrder.updated_at)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def sell_reserved(session: AsyncSession, user_id: uuid.UUID, symbol: str) -> Decimal:
    value = await session.scalar(
        select(func.coalesce(func.sum(BrokerageOrder.qty - BrokerageOrder.filled_qty), 0)).where(
            BrokerageOrder.user_id == user_id,
            BrokerageOrder.symbol == symbol,
            BrokerageOrder.side == "sell",
            BrokerageOrder.status.not_in(TERMINAL),
        )
    )
    return Decimal(value or 0)


async def open_holds(session: AsyncSession, user_id: uuid.UUID) -> int:
    value = await session.scalar(
        select(func.coalesce(func.sum(BrokerageOrder.hold_cents), 0)).where(
            BrokerageOrder.user_id == user_id
        )
    )
    return int(value or 0)


async def claim_event(
    session: AsyncSession,
    *,
    event_id: str,
    event: str,
    broker_order_id: str,
    payload: dict[str, Any],
) -> bool:
    """Store a received event once; False when it was seen before."""
    stmt = (
        insert(BrokerageEvent)
        .values(id=event_id, event=event, broker_order_id=broker_order_id, payload=payload)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(BrokerageEvent.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def event_known(session: AsyncSession, event_id: str) -> bool:
    found = await session.scalar(select(BrokerageEvent.id).where(BrokerageEvent.id == event_id))
    return found is not None


async def claim_execution(session: AsyncSession, values: dict[str, Any]) -> None:
    """Record an execution once (by execution id); in a batch, at the batch's end."""
    batch = batch_of(session)
    if batch is not None:
        batch.executions.append(values)
        return
    await session.execute(
        insert(BrokerageExecution)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["execution_id"])
    )


_CLAIM_EVENTS = text(
    "INSERT INTO brokerage_events (id, event, broker_order_id, payload, received_at) "
    "SELECT u.id, u.event, u.broker_order_id, CAST(u.payload AS jsonb), :at "
    "FROM unnest(CAST(:ids AS text[]), CAST(:events AS text[]), CAST(:orders AS text[]), "
    "            CAST(:payloads AS text[])) AS u(id, event, broker_order_id, payload) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)


async def claim_events(session: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """Store received events once, in one statement (arrays through unnest: one cached
    statement whatever the batch's size); the ids that were new."""
    if not rows:
        return set()
    found = await session.execute(
        _CLAIM_EVENTS,
        {
            "ids": [r["id"] for r in rows],
            "events": [r["event"] for r in rows],
            "orders": [r["broker_order_id"] for r in rows],
            "payloads": [json.dumps(r["payload"], separators=(",", ":")) for r in rows],
            "at": utcnow(),
        },
    )
    return {str(i) for i in found.scalars().all()}


def _texts(values: list[str], name: str = "ids") -> BindParameter[Any]:
    array: Any = ARRAY(String)
    return bindparam(name, values, array)


async def preload_batch(
    session: AsyncSession, broker_order_ids: Sequence[str]
) -> tuple[dict[str, BrokerageOrder], Batch]:
    """For a batch of events: their orders locked (in id order), those orders' positions
    locked and their journals, in three statements (`= ANY(array)`: the same statement for
    any number of rows); the session then holds the batch."""
    stmt = (
        select(BrokerageOrder)
        .where(BrokerageOrder.broker_order_id == any_(_texts(sorted(set(broker_order_ids)))))
        .order_by(BrokerageOrder.id)
        .with_for_update()
    )
    found = (await session.scalars(stmt)).all()
    orders = {o.broker_order_id: o for o in found if o.broker_order_id}
    batch = Batch()
    pairs = sorted({(o.user_id, o.symbol) for o in orders.values()})
    if pairs:
        held = await session.scalars(
            select(BrokeragePosition)
            .where(
                tuple_(BrokeragePosition.user_id, BrokeragePosition.symbol).in_(
                    select(
                        func.unnest(bindparam("users", [p[0] for p in pairs], ARRAY(PGUUID))),
                        func.unnest(_texts([p[1] for p in pairs], "symbols")),
                    )
                )
            )
            .order_by(BrokeragePosition.user_id, BrokeragePosition.symbol)
            .with_for_update()
        )
        batch.positions = {(p.user_id, p.symbol): p for p in held.all()}
        keys = [f"order:{o.id}:{k}" for o in orders.values() for k in ("fund", "sweep")]
        batch.journals = dict.fromkeys(keys)
        rows = await session.scalars(
            select(BrokerageJournal).where(BrokerageJournal.key == any_(_texts(keys, "keys")))
        )
        batch.journals.update({j.key: j for j in rows.all()})
    session.info[BATCH] = batch
    return orders, batch


_INSERT_EXECUTIONS = text(
    "INSERT INTO brokerage_executions (execution_id, order_id, user_id, symbol, side, qty, "
    " price, amount_cents, applied_qty, applied_cents, source, created_at) "
    "SELECT u.e, u.o, u.u, u.sy, u.si, u.q, u.p, u.a, u.aq, u.ac, u.s, :at FROM unnest("
    " CAST(:execution_id AS text[]), CAST(:order_id AS uuid[]), "
    " CAST(:user_id AS uuid[]), CAST(:symbol AS text[]), CAST(:side AS text[]), "
    " CAST(:qty AS numeric[]), CAST(:price AS numeric[]), CAST(:amount_cents AS bigint[]), "
    " CAST(:applied_qty AS numeric[]), CAST(:applied_cents AS bigint[]), "
    " CAST(:source AS text[])) AS u(e, o, u, sy, si, q, p, a, aq, ac, s) "
    "ON CONFLICT (execution_id) DO NOTHING"
)
_EXECUTION_COLUMNS = (
    "execution_id",
    "order_id",
    "user_id",
    "symbol",
    "side",
    "qty",
    "price",
    "amount_cents",
    "applied_qty",
    "applied_cents",
    "source",
)


async def finish_batch(session: AsyncSession, batch: Batch) -> None:
    """The batch's executions in one statement (arrays through unnest), then every row it
    changed."""
    session.info.pop(BATCH, None)
    if batch.executions:
        params: dict[str, Any] = {c: [x[c] for x in batch.executions] for c in _EXECUTION_COLUMNS}
        params["at"] = utcnow()
        await session.execute(_INSERT_EXECUTIONS, params)
    await session.flush()


async def executions(
    session: AsyncSession, order_id: uuid.UUID, *, applied_only: bool = False
) -> list[BrokerageExecution]:
    stmt = select(BrokerageExecution).where(BrokerageExecution.order_id == order_id)
    if applied_only:
        stmt = stmt.where(
            or_(BrokerageExecution.applied_qty > 0, BrokerageExecution.source == "correction")
        )
    return list((await session.scalars(stmt.order_by(BrokerageExecution.id))).all())


async def trades_page(
    session: AsyncSession, user_id: uuid.UUID, *, before: int | None, limit: int
) -> list[BrokerageExecution]:
    stmt = select(BrokerageExecution).where(
        BrokerageExecution.user_id == user_id,
        or_(BrokerageExecution.applied_qty > 0, BrokerageExecution.source == "correction"),
    )
    if before is not None:
        stmt = stmt.where(BrokerageExecution.id < before)
    stmt = stmt.order_by(BrokerageExecution.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


async def position(
    session: AsyncSession, user_id: uuid.UUID, symbol: str, *, lock: bool = False
) -> BrokeragePosition | None:
    batch = batch_of(session)
    if batch is not None and (user_id, symbol) in batch.positions:
        return batch.positions[(user_id, symbol)]
    stmt = select(BrokeragePosition).where(
        BrokeragePosition.user_id == user_id, BrokeragePosition.symbol == symbol
    )
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def positions(session: AsyncSession, user_id: uuid.UUID) -> list[BrokeragePosition]:
    stmt = (
        select(BrokeragePosition)
        .where(BrokeragePosition.user_id == user_id, BrokeragePosition.qty > 0)
        .order_by(BrokeragePosition.symbol)
    )
    return list((await session.scalars(stmt)).all())


async def journal(
    session: AsyncSession, key: str, *, lock: bool = False
) -> BrokerageJournal | None:
    batch = batch_of(session)
    if batch is not None and not lock and key in batch.journals:
        return batch.journals[key]
    stmt = select(BrokerageJournal).where(BrokerageJournal.key == key)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def pending_journals(
    session: AsyncSession, *, limit: int, leave_fresh_since: dt.datetime | None = None
) -> list[BrokerageJournal]:
    """Pending journals, locked (skipping rows another executor holds). With
    `leave_fresh_since`, funding journals created after it are left to their order request."""
    stmt = select(BrokerageJournal).where(BrokerageJournal.status == "pending")
    if leave_fresh_since is not None:
        stmt = stmt.where(
            or_(
                BrokerageJournal.key.not_like("%:fund"),
                BrokerageJournal.created_at < leave_fresh_since,
            )
        )
    stmt = stmt.order_by(BrokerageJournal.created_at).limit(limit).with_for_update(skip_locked=True)
    return list((await session.scalars(stmt)).all())


async def journal_totals(session: AsyncSession, user_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        select(BrokerageJournal.direction, func.sum(BrokerageJournal.amount_cents))
        .where(BrokerageJournal.user_id == user_id, BrokerageJournal.status == "executed")
        .group_by(BrokerageJournal.direction)
    )
    return {str(d): int(v or 0) for d, v in rows.all()}


async def fill_totals(session: AsyncSession, user_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        select(BrokerageOrder.side, func.sum(BrokerageOrder.filled_cents))
        .where(BrokerageOrder.user_id == user_id)
        .group_by(BrokerageOrder.side)
    )
    return {str(side): int(v or 0) for side, v in rows.all()}


async def cursor(session: AsyncSession, name: str, *, lock: bool = False) -> BrokerageCursor:
    await session.execute(
        insert(BrokerageCursor).values(name=name, last_id=None).on_conflict_do_nothing()
    )
    stmt = select(BrokerageCursor).where(BrokerageCursor.name == name)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one()


async def advance_cursor(session: AsyncSession, name: str, last_id: str) -> None:
    """Move a cursor to `last_id` in one statement (created on first use; the row stays
    locked until commit, so two consumers' batches commit one after the other)."""
    stmt = insert(BrokerageCursor).values(name=name, last_id=last_id, updated_at=utcnow())
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"last_id": stmt.excluded.last_id, "updated_at": stmt.excluded.updated_at},
        )
    )


def add_alert(
    session: AsyncSession,
    *,
    kind: str,
    user_id: uuid.UUID | None,
    subject: str,
    details: dict[str, Any],
) -> None:
    session.add(BrokerageAlert(kind=kind, user_id=user_id, subject=subject, details=details))


async def alert_exists(session: AsyncSession, kind: str, subject: str) -> bool:
    found = await session.scalar(
        select(BrokerageAlert.id)
        .where(BrokerageAlert.kind == kind, BrokerageAlert.subject == subject)
        .limit(1)
    )
    return found is not None


async def alerts(session: AsyncSession, *, limit: int) -> list[BrokerageAlert]:
    stmt = select(BrokerageAlert).order_by(BrokerageAlert.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


async def pending_journal_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    value = await session.scalar(
        select(func.count())
        .select_from(BrokerageJournal)
        .where(BrokerageJournal.user_id == user_id, BrokerageJournal.status == "pending")
    )
    return int(value or 0)


# --- the portfolio's reads ------------------------------------------------------------------


async def user_executions(session: AsyncSession, user_id: uuid.UUID) -> list[BrokerageExecution]:
    """Every execution that moved the user's position or cash, corrections (signed qty and
    cents) included, oldest first."""
    stmt = (
        select(BrokerageExecution)
        .where(
            BrokerageExecution.user_id == user_id,
            or_(BrokerageExecution.applied_qty > 0, BrokerageExecution.source == "correction"),
        )
        .order_by(BrokerageExecution.id)
    )
    return list((await session.scalars(stmt)).all())


async def executions_version(session: AsyncSession, user_id: uuid.UUID) -> tuple[int, int]:
    """(count, max id) of the user's executions: the table is insert-only (a bust or a
    correction is a new `correction` row), so a change to `user_executions` changes the count
    even when its row commits under a lower id."""
    stmt = select(func.count(), func.coalesce(func.max(BrokerageExecution.id), 0)).where(
        BrokerageExecution.user_id == user_id
    )
    count, top = (await session.execute(stmt)).one()
    return int(count), int(top)


async def positions_of(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> list[BrokeragePosition]:
    stmt = select(BrokeragePosition).where(
        BrokeragePosition.user_id.in_(list(user_ids)), BrokeragePosition.qty > 0
    )
    return list((await session.scalars(stmt)).all())


async def last_prices(session: AsyncSession, symbols: Sequence[str]) -> dict[str, Decimal]:
    """Each symbol's last execution price (any customer): the mark when no quote is had."""
    stmt = (
        select(BrokerageExecution.symbol, BrokerageExecution.price)
        .where(BrokerageExecution.symbol.in_(list(symbols)))
        .distinct(BrokerageExecution.symbol)
        .order_by(BrokerageExecution.symbol, BrokerageExecution.id.desc())
    )
    return {r[0]: r[1] for r in (await session.execute(stmt)).all()}


async def last_prices_before(
    session: AsyncSession, symbols: Sequence[str], before: dt.datetime
) -> dict[str, Decimal]:
    stmt = (
        select(BrokerageExecution.symbol, BrokerageExecution.price)
        .where(BrokerageExecution.symbol.in_(list(symbols)), BrokerageExecution.created_at < before)
        .distinct(BrokerageExecution.symbol)
        .order_by(BrokerageExecution.symbol, BrokerageExecution.id.desc())
    )
    return {r[0]: r[1] for r in (await session.execute(stmt)).all()}
