"""What a book command changed, as events for the live feeds: `exchange.book` per market and
`exchange.order` per order, built from committed changes only and in commit order per market.

The book command's publish step is `commit()`: inside the transaction (the market row is
locked) it compares the market's live book with the last published state, bumps the market's
`seq`, saves the new state and writes both events to the outbox (the durable record); then it
commits and appends the events to the Redis streams right away (pull.kit.streams), which is
what makes commit -> client fast. If the process dies between commit and append, the outbox
relay appends them (once: `xadd_once`). Readers order book events by `seq` per market.

Events:
- `exchange.book` {eid, ticker, market_id, seq, ts, changes: [{side, price, delta, count}],
  trades: [{trade_id, yes_price, count, taker_side, created_time}], market: {status,
  last_price, yes_bid, yes_ask, volume, open_interest, result}, status_changed, by}
  (`price` is the bid price on `side` in cents; `by` = {user_id, client_order_id} of the order
  that caused the change, when one did)
- `exchange.order` {eid, user_id, order_id, status, ticker, order: <OrderRead>, fills: [...],
  position: {...} | null}: the command's own orders, every order its fills touched, and orders
  changed in bulk in the transaction (`orders_changed`: mass cancels at close/resolve/void)
- lifecycle {eid, kind: "lifecycle", ticker, status, result} for each `exchange.market` outbox
  event, and {eid, kind: "event_lifecycle", event_ticker, ...} for each `exchange.event`, of
  any transaction: stamped with an `eid` when flushed (a `before_flush` listener) and appended
  right after the commit (`commit()` here, or the kit's after-commit hook); the relay appends
  the same eid later, which is then a no-op
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import event as sa_event
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pull.exchange import book_state_repository as repo
from pull.exchange.schemas import OrderRead
from pull.exchange.views import order_read
from pull.kit import db, streams
from pull.kit.outbox import OutboxEvent, emit

log = logging.getLogger("pull.exchange.book_events")

BOOK_TOPIC = "exchange.book"
ORDER_TOPIC = "exchange.order"
MARKET_TOPIC = "exchange.market"  # lifecycle: {ticker, status, result?} (pull.exchange.markets)
EVENT_TOPIC = "exchange.event"  # an event was created: {event_ticker, series_ticker, title, ...}
_CHANGED = "book_events.orders_changed"


def orders_changed(session: AsyncSession, order_ids: Iterable[uuid.UUID]) -> None:
    """Orders changed in this transaction other than through the command's result (a mass
    cancel: market close, resolve, void): the market's `record()` later in the same transaction
    emits an `exchange.order` event for each (user_orders, the app stream's `order`). No I/O."""
    pending: set[uuid.UUID] = session.info.setdefault(_CHANGED, set())
    pending.update(order_ids)


def _orders_of(result: Any) -> tuple[list[OrderRead], bool]:
    """The orders a command's result names (Placed, Changed, Canceled, OrderRead), and whether
    it was an idempotent replay (which changed nothing). A list is a group commit's outcomes
    (refused orders are exceptions, and name nothing)."""
    if isinstance(result, list):
        return [o for r in result for o in _orders_of(r)[0]], False
    if getattr(result, "replayed", False):
        return [], True
    if isinstance(result, OrderRead):
        return [result], False
    order = getattr(result, "order", None)
    return ([order] if isinstance(order, OrderRead) else []), False


def level_changes(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> list[dict[str, Any]]:
    """Every level whose count differs, with the signed delta and the new count."""
    out: list[dict[str, Any]] = []
    for side in ("yes", "no"):
        old, new = before.get(side, {}), after.get(side, {})
        for price in sorted(set(old) | set(new), key=int):
            delta = new.get(price, 0) - old.get(price, 0)
            if delta:
                out.append(
                    {"side": side, "price": int(price), "delta": delta, "count": new.get(price, 0)}
                )
    return out


def trades_of(fills: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One trade per taker fill (each trade has one taker and one maker fill)."""
    return [
        {
            "trade_id": f["trade_id"],
            "yes_price": f["yes_price"],
            "count": f["count"],
            "taker_side": f["side"],
            "created_time": f["created_at"],
        }
        for f in fills
        if f["is_taker"]
    ]


def book_event(
    *,
    ticker: str,
    market_id: uuid.UUID,
    seq: int,
    changes: list[dict[str, Any]],
    trades: list[dict[str, Any]],
    market: dict[str, Any],
    status_changed: bool,
    by: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "eid": uuid.uuid4().hex,
        "ticker": ticker,
        "market_id": str(market_id),
        "seq": seq,
        "ts": int(time.time() * 1000),
        "changes": changes,
        "trades": trades,
        "market": market,
        "status_changed": status_changed,
        "by": by,
    }


def order_event(
    order: dict[str, Any], fills: list[dict[str, Any]], position: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "eid": uuid.uuid4().hex,
        "user_id": str(order["user_id"]),
        "order_id": str(order["order_id"]),
        "status": order["status"],
        "ticker": order["ticker"],
        "order": order,
        "fills": fills,
        "position": position,
    }


class Recorded:
    """The events one transaction recorded, to append to the streams after its commit."""

    def __init__(self, book: dict[str, Any] | None, orders: list[dict[str, Any]]) -> None:
        self.book = book
        self.orders = orders


LIFECYCLE_TOPICS = (MARKET_TOPIC, EVENT_TOPIC)
_PENDING = "book_events.lifecycle"


@sa_event.listens_for(Session, "before_flush")
def _stamp_lifecycle(session: Session, _context: Any, _instances: Any) -> None:
    """Before any flush: give the new `exchange.market` / `exchange.event` outbox events an
    event id, and keep them (and their stream events) in the session for the publish right
    after the commit (the relay later publishes the same ids: a no-op). Stateless: it only
    touches the flushing session."""
    for ev in session.new:
        if not isinstance(ev, OutboxEvent) or ev.topic not in LIFECYCLE_TOPICS:
            continue
        payload = dict(ev.payload or {})
        if "eid" in payload:
            continue
        payload["eid"] = f"lifecycle-{uuid.uuid4().hex}"
        ev.payload = payload
        pending = session.info.setdefault(_PENDING, [])
        pending.append((ev, lifecycle_event(ev.topic, payload)))


def _committed_lifecycle(session: AsyncSession) -> list[dict[str, Any]]:
    """The kept lifecycle events whose outbox rows committed (a rolled-back attempt's are
    dropped: their rows are no longer persistent)."""
    pending: list[tuple[OutboxEvent, dict[str, Any]]] = session.info.pop(_PENDING, [])
    return [event for ev, event in pending if inspect(ev).persistent]


def lifecycle_event(topic: str, payload: dict[str, Any], eid: str | None = None) -> dict[str, Any]:
    """An `exchange.market` / `exchange.event` payload as the market stream's event."""
    if topic == EVENT_TOPIC:
        return {
            "eid": eid or payload["eid"],
            "kind": "event_lifecycle",
            "ticker": "",
            "event_ticker": payload["event_ticker"],
            "series_ticker": payload.get("series_ticker"),
            "title": payload.get("title"),
            "subtitle": payload.get("subtitle"),
        }
    return {
        "eid": eid or payload["eid"],
        "kind": "lifecycle",
        "ticker": payload["ticker"],
        "status": payload.get("status"),
        "result": payload.get("result"),
    }


async def _after_commit(session: AsyncSession) -> None:
    session.info.pop(_CHANGED, None)
    events = _committed_lifecycle(session)
    redis = session.info.get("redis")
    if events and isinstance(redis, Redis):
        await _publish(redis, market=events, user=[])


db.register_after_commit(_after_commit)


async def record(session: AsyncSession, *, ticker: str, result: Any = None) -> Recorded | None:
    """Inside the book command's transaction: diff, bump seq, save state, write the outbox."""
    state = await repo.lock_state(session, ticker)
    if state is None:
        return None
    named, replayed = _orders_of(result)
    if replayed:
        return None
    live = await repo.read_changes(session, state.market_id, state.last_fill_id)
    after = {"yes": live.yes, "no": live.no}
    changes = level_changes(state.levels, after)
    status = str(live.market.get("status") or "")
    status_changed = status != state.status
    book: dict[str, Any] | None = None
    seq = state.seq
    if changes or live.fills or status_changed:
        seq += 1
        first = named[0] if named else None
        by = (
            {"user_id": str(first.user_id), "client_order_id": first.client_order_id}
            if first is not None
            else None
        )
        book = book_event(
            ticker=ticker,
            market_id=state.market_id,
            seq=seq,
            changes=changes,
            trades=trades_of(live.fills),
            market=live.market,
            status_changed=status_changed,
            by=by,
        )
        last_fill = max((int(f["id"]) for f in live.fills), default=state.last_fill_id)
        await repo.save_state(
            session,
            market_id=state.market_id,
            seq=seq,
            levels=after,
            last_fill_id=last_fill,
            status=status,
        )
        emit(session, topic=BOOK_TOPIC, key=ticker, payload=book)
    changed: set[uuid.UUID] = session.info.get(_CHANGED) or set()
    orders = await _order_events(session, state.market_id, named, live.fills, changed)
    for event in orders:
        emit(session, topic=ORDER_TOPIC, key=event["order_id"], payload=event)
        changed.discard(uuid.UUID(event["order_id"]))
    if book is None and not orders:
        return None
    return Recorded(book, orders)


async def _order_events(
    session: AsyncSession,
    market_id: uuid.UUID,
    named: Sequence[OrderRead],
    fills: Sequence[dict[str, Any]],
    changed: Iterable[uuid.UUID] = (),
) -> list[dict[str, Any]]:
    ids = {o.order_id for o in named} | {uuid.UUID(str(f["order_id"])) for f in fills}
    ids |= set(changed)  # rows of other markets are not returned (market_id filter)
    if not ids:
        return []
    users = {o.user_id for o in named} | {uuid.UUID(str(f["user_id"])) for f in fills}
    rows, positions = await repo.orders_and_positions(
        session, market_id, sorted(ids), sorted(users)
    )
    by_user = {str(p["user_id"]): p for p in positions}
    out = []
    for row in rows:
        order = order_read(row).model_dump(mode="json")
        own = [f for f in fills if str(f["order_id"]) == order["order_id"]]
        out.append(order_event(order, own, by_user.get(order["user_id"]) if own else None))
    return out


async def publish(
    recorded: Recorded | None,
    *,
    redis: Redis | None = None,
    lifecycle: Sequence[dict[str, Any]] = (),
) -> None:
    """After commit: append the events to the streams (best effort; the outbox relay retries).

    `redis` is the committing session's own (its app's), so a second app in the same process
    (tests, tools) can never redirect or switch off another app's publishes."""
    redis = redis or streams.publisher()
    if redis is None:
        return
    market = list(lifecycle)
    if recorded is not None and recorded.book is not None:
        market.insert(0, recorded.book)
    orders = recorded.orders if recorded is not None else []
    await _publish(redis, market=market, user=[(e["user_id"], user_event(e)) for e in orders])


async def _publish(
    redis: Redis, *, market: list[dict[str, Any]], user: list[tuple[str, dict[str, Any]]]
) -> None:
    if not market and not user:
        return
    try:
        await streams.publish_many(redis, market=market, user=user)
    except Exception as exc:  # Redis down: the relay appends them from the outbox
        log.warning("live publish failed", extra={"error": type(exc).__name__})


def user_event(event: dict[str, Any]) -> dict[str, Any]:
    """An `exchange.order` event as the user stream carries it."""
    return {"eid": event["eid"], "type": ORDER_TOPIC, "data": event}


async def commit(session: AsyncSession, *, ticker: str | None, result: Any = None) -> None:
    """The book command's publish step: record (in the transaction), commit, publish."""
    recorded = await record(session, ticker=ticker, result=result) if ticker else None
    await session.commit()
    session.info.pop(_CHANGED, None)
    lifecycle = _committed_lifecycle(session)
    if recorded is not None or lifecycle:
        own = session.info.get("redis")
        await publish(recorded, redis=own if isinstance(own, Redis) else None, lifecycle=lifecycle)


async def read_book(session: AsyncSession, *, ticker: str) -> repo.StateRow | None:
    """The last published book of a market (levels as of `seq`), for snapshots."""
    return await repo.read_state(session, ticker)


async def read_books(
    session: AsyncSession, *, tickers: Sequence[str]
) -> dict[str, dict[str, dict[str, int]]]:
    """The published levels of several markets, by ticker (for top-of-book sizes)."""
    return await repo.read_levels(session, list(tickers)) if tickers else {}
