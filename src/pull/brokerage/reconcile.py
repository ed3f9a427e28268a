"""Reconciliation: orders, positions and cash compared with the broker; missed events healed.

- every order not done (or done but not settled) and quiet for `grace` is re-read from the
  broker and converged (fills applied by cumulative quantity, so a dropped fill event is
  healed and a late one later changes nothing); an order that never reached the broker is
  submitted again by client_order_id lookup, or rejected when the broker does not have it;
- pending journals are executed;
- per account, the broker's positions must equal PULL's and its cash must equal what the
  executed journals and the fills imply; a difference it cannot explain is an alert.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.brokerage import accounts, fills, orders
from pull.brokerage import repository as repo
from pull.brokerage.models import BrokerageAccount
from pull.brokerage.money import cents_of
from pull.brokerage.providers.base import Broker, BrokerError, BrokerNotFound
from pull.brokerage.schemas import ReconcileReport
from pull.kit.db import session_scope, utcnow

log = logging.getLogger("pull.brokerage.reconcile")


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
