"""Reconciliation: orders, positions and cash compared with the broker; missed events healed.

- every order not done (or done but not settled) and quiet for `grace` is re-read from the
  broker and converged (fills applied by cumulative quantity, so a dropped fill event is
  healed and a late one later changes nothing); an order that never reached the broker is
  submitted again by client_order_id lookup, or rejected when the broker does not have it;
- pending journals are executed;
- corrections the consumer missed (a dropped `trade_bust` / `trade_correct`: the stream moved
  on without PULL applying it) are found by re-reading the broker's trade events from the
  heal cursor (`since_id`, Alpaca's "re-replay" of a stream that dropped messages) and applied
  once, to the broker's current state of the order (see `_corrections`);
- per account, the broker's positions must equal PULL's and its cash must equal what the
  executed journals and the fills imply; a difference it cannot explain is an alert.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.brokerage import accounts, fills, orders
from pull.brokerage import repository as repo
from pull.brokerage.models import BrokerageAccount
from pull.brokerage.money import cents_of
from pull.brokerage.providers import wire
from pull.brokerage.providers.base import (
    Broker,
    BrokerError,
    BrokerNotFound,
    BrokerRejected,
    Heartbeat,
    TradeEvent,
)
from pull.brokerage.schemas import ReconcileReport
from pull.kit.db import session_scope, utcnow

log = logging.getLogger("pull.brokerage.reconcile")
HEAL_CURSOR = "heal"
HEAL_FIRST_START = dt.timedelta(days=1)
HEAL_MAX_EVENTS = 50_000  # per run; the next run goes on from the heal cursor
CORRECTIONS = ("trade_bust", "trade_correct")


async def _heal_correction(
    maker: async_sessionmaker[AsyncSession], broker: Broker, event: TradeEvent
) -> bool:
    """Apply one correction event the consumer did not: claimed by its id (so the stream, if
    it delivers it later, skips it), converged in correction mode to the broker's *current*
    state of the order (later fills may have been applied meanwhile; the broker is the source
    of truth), with the event's id as the correction's ledger key. True if it moved anything."""
    async with session_scope(maker) as session:
        if not await repo.claim_event(
            session,
            event_id=event.event_id,
            event=event.event,
            broker_order_id=event.order.id,
            payload=wire.event_json(event),
        ):
            return False  # the consumer applied it meanwhile
        order = await repo.order_by_broker_id(session, event.order.id, lock=True)
        if order is None:
            try:
                order = await repo.order(session, uuid.UUID(event.order.client_order_id), lock=True)
            except ValueError:
                order = None
        if order is None or order.broker_account_id != event.account_id:
            return False  # not PULL's order: the consumer alerts it (unknown_order)
        snap = await broker.get_order(account_id=order.broker_account_id, order_id=event.order.id)
        before = (order.filled_qty, order.filled_cents)
        await fills.converge(
            session=session,
            order=order,
            snap=snap,
            source="reconcile",
            event_id=event.event_id,
            correction=True,
        )
        return (order.filled_qty, order.filled_cents) != before


async def _corrections(
    maker: async_sessionmaker[AsyncSession],
    broker: Broker,
    report: ReconcileReport,
    *,
    grace: dt.timedelta,
) -> None:
    """Re-read the trade events after the heal cursor up to `grace` ago (newer ones are the
    consumer's to apply) and heal every correction event PULL has not stored. The cursor
    advances past what was read, so each event is looked at once."""
    cutoff = utcnow() - grace
    async with session_scope(maker) as session:
        since_id = (await repo.cursor(session, HEAL_CURSOR)).last_id
    since = None if since_id else utcnow() - HEAL_FIRST_START
    last: str | None = None
    seen = 0
    try:
        async with contextlib.aclosing(
            broker.trade_events(since_id=since_id, since=since)  # type: ignore[type-var]
        ) as stream:
            async for item in stream:
                if isinstance(item, Heartbeat) or item.at > cutoff or seen >= HEAL_MAX_EVENTS:
                    break
                seen += 1
                if item.event in CORRECTIONS:
                    async with session_scope(maker) as session:
                        known = await repo.event_known(session, item.event_id)
                    if not known:
                        if await _heal_correction(maker, broker, item):
                            report.corrections_healed += 1
                last = item.event_id
    except BrokerRejected as exc:
        if since_id is None:
            log.warning("reconcile: trade events refused", extra={"error": exc.message})
            return
        # the broker no longer knows the heal cursor's event: start again from a day ago
        log.warning("reconcile: heal cursor unknown; reset", extra={"error": exc.message})
        async with session_scope(maker) as session:
            (await repo.cursor(session, HEAL_CURSOR, lock=True)).last_id = None
        return
    except BrokerError as exc:
        log.warning("reconcile: trade events unreadable", extra={"error": exc.message})
    if last is not None:
        async with session_scope(maker) as session:
            cursor = await repo.cursor(session, HEAL_CURSOR, lock=True)
            cursor.last_id = last
            cursor.updated_at = utcnow()


async def _orders(
    maker: async_sessionmaker[AsyncSession],
    broker: Broker,
    report: ReconcileReport,
    *,
    grace: dt.timedelta,
    pending_timeout: dt.timedelta,
) -> None:
    now = utcnow()
    async with session_scope(maker) as session:
        ids = [o.id for o in await repo.open_orders(session, older_than=now - grace, limit=1000)]
    for order_id in ids:
        report.orders_checked += 1
        try:
            async with session_scope(maker) as session:
                order = await repo.order(session, order_id, lock=True)
                if order is None:
                    continue
                if order.broker_order_id is None:
                    snap = await broker.get_order_by_client_id(
                        account_id=order.broker_account_id, client_order_id=str(order.id)
                    )
                    if snap is None:
                        if (
                            order.status == "pending_new"
                            and now - order.created_at > pending_timeout
                        ):
                            await fills.reject(
                                session=session, order=order, reason="never reached the broker"
                            )
                            report.orders_healed += 1
                        elif order.status == "pending_new":
                            await orders.send(session=session, broker=broker, order_id=order.id)
                        continue
                else:
                    snap = await broker.get_order(
                        account_id=order.broker_account_id, order_id=order.broker_order_id
                    )
                filled = order.filled_qty
                if await fills.converge(
                    session=session, order=order, snap=snap, source="reconcile"
                ):
                    report.orders_healed += 1
                if order.filled_qty > filled:
                    report.fills_healed += 1
        except BrokerNotFound:
            continue
        except BrokerError as exc:
            log.warning("reconcile: broker error", extra={"error": exc.message})


async def _alert_once(
    session: AsyncSession,
    *,
    kind: str,
    account: BrokerageAccount,
    subject: str,
    details: dict[str, str],
) -> bool:
    if await repo.alert_exists(session, kind, subject):
        return False
    repo.add_alert(session, kind=kind, user_id=account.user_id, subject=subject, details=details)
    return True


async def _accounts(
    maker: async_sessionmaker[AsyncSession], broker: Broker, report: ReconcileReport
) -> None:
    after = None
    while True:
        async with session_scope(maker) as session:
            page = await repo.accounts_page(session, after=after, limit=200)
        if not page:
            return
        after = page[-1].user_id
        for account in page:
            report.accounts_checked += 1
            try:
                remote = {
                    p.symbol: p.qty
                    for p in await broker.list_positions(account_id=account.broker_account_id)
                }
                cash = (await broker.get_account(account_id=account.broker_account_id)).cash
            except BrokerError as exc:
                log.warning("reconcile: account unreadable", extra={"error": exc.message})
                continue
            async with session_scope(maker) as session:
                ours = {p.symbol: p.qty for p in await repo.positions(session, account.user_id)}
                for symbol in sorted(set(remote) | set(ours)):
                    theirs, mine = remote.get(symbol, Decimal(0)), ours.get(symbol, Decimal(0))
                    if theirs != mine and await _alert_once(
                        session,
                        kind="position_mismatch",
                        account=account,
                        subject=f"{account.user_id}:{symbol}:{theirs}:{mine}",
                        details={"symbol": symbol, "broker": str(theirs), "pull": str(mine)},
                    ):
                        report.alerts += 1
                if await repo.pending_journal_count(session, account.user_id):
                    continue  # cash is in flight
                journals = await repo.journal_totals(session, account.user_id)
                fills = await repo.fill_totals(session, account.user_id)
                expected = (
                    journals.get("to_customer", 0)
                    - journals.get("to_firm", 0)
                    - fills.get("buy", 0)
                    + fills.get("sell", 0)
                )
                actual = cents_of(cash)
                if expected != actual and await _alert_once(
                    session,
                    kind="cash_mismatch",
                    account=account,
                    subject=f"{account.user_id}:{expected}:{actual}",
                    details={"broker_cents": str(actual), "expected_cents": str(expected)},
                ):
                    report.alerts += 1


async def reconcile(
    *,
    maker: async_sessionmaker[AsyncSession],
    broker: Broker,
    grace_seconds: float = 30.0,
    pending_timeout_seconds: float = 300.0,
    check_accounts: bool = True,
) -> ReconcileReport:
    report = ReconcileReport()
    report.journals_executed += await accounts.execute_journals(maker=maker, broker=broker)
    await _corrections(maker, broker, report, grace=dt.timedelta(seconds=grace_seconds))
    await _orders(
        maker,
        broker,
        report,
        grace=dt.timedelta(seconds=grace_seconds),
        pending_timeout=dt.timedelta(seconds=pending_timeout_seconds),
    )
    report.journals_executed += await accounts.execute_journals(maker=maker, broker=broker)
    if check_accounts:
        await _accounts(maker, broker, report)
    return report
