"""Book commands: the one unit of work through which orders enter, change or leave a book.

Both order surfaces, the app API (`/api/v1/orders...`) and the Kalshi-compatible Trade API
(`/trade-api/v2/portfolio/orders...`), call these functions and nothing else to place, batch
place, amend, decrease or cancel; the admin lifecycle calls (open, pause, close, resolve) go
through `market_command`. Each command:

1. applies the account rule: placing and amending add risk and need an `active` account;
   canceling and decreasing only reduce it and are allowed to restricted accounts too;
2. waits for this process's gate of the market (an asyncio lock per ticker), so that one book
   change per market and process at a time waits in PostgreSQL's lock queue;
3. runs the service call in a transaction of its own and commits it before returning: an
   answer means the change is durable;
4. when PostgreSQL picks the transaction as a deadlock victim (or a serialization failure, or
   two requests racing to create one `client_order_id`), rolls the whole transaction back and
   runs it again after a short jittered pause, for up to `RETRY_SECONDS`; a command that is
   still losing after that is answered 429 `BUSY` with `Retry-After`, never a 5xx.

Lock order: a transaction holds at most one market's row lock. A batch is a sequence of
single-market commands, each committed on its own (items succeed or fail on their own, as
they always did), so two batches over [A, B] and [B, A] can never wait on each other's market
locks. What two commands in different markets can still both lock (users' ledger and trading
limit rows) is what the retry is for.

This module is the transaction boundary of book changes, as `pull.kit.db.get_session` is of
other requests: it commits; the service it calls never does.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pull.config import get_settings
from pull.exchange import book_events, read_cache, service
from pull.exchange import book_repository as book_repo
from pull.exchange.book_repository import LockedMarket
from pull.exchange.errors import InvalidOrder, MarketNotFound
from pull.exchange.placement import WROTE
from pull.exchange.schemas import (
    BatchError,
    BatchItem,
    OrderAmend,
    OrderCreate,
    OrderDecrease,
    OrderRead,
)
from pull.identity.errors import AccountRestricted
from pull.identity.schemas import AuthUser
from pull.kit.errors import AppError, TooManyRequests
from pull.kit.group_commit import GroupCommit
from pull.kit.idempotency import InvalidIdempotencyKey, check_key, run_idempotent

__all__ = [
    "AMEND_KEY_SCOPE",
    "DECREASE_KEY_SCOPE",
    "MAX_BATCH",
    "ORDER_KEY_SCOPE",
    "Busy",
    "Canceled",
    "Changed",
    "Placed",
    "amend",
    "cancel",
    "cancel_batch",
    "decrease",
    "market_command",
    "place",
    "place_batch",
]

T = TypeVar("T")

MAX_BATCH = 20
RETRY_SECONDS = 5.0
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
RETRYABLE_CONSTRAINTS = ("uq_exchange_orders_client_order",)
# One idempotency scope for orders on both surfaces and in batches: a user's client_order_id
# (or the app API's Idempotency-Key) names one order request wherever it is sent.
ORDER_KEY_SCOPE = "exchange.order"
AMEND_KEY_SCOPE = "exchange.amend"
DECREASE_KEY_SCOPE = "exchange.decrease"

# One book change per market at a time in this process: the others wait here, not holding a
# database connection in PostgreSQL's lock queue while the lock holder competes with them for
# this process's event loop.
_MARKET_GATES: dict[str, asyncio.Lock] = {}


class Busy(TooManyRequests):
    code = "BUSY"
    message = "The market is busy, try again"


@dataclass(frozen=True)
class Placed:
    order: OrderRead
    replayed: bool = False


@dataclass(frozen=True)
class Changed:
    """An amend or decrease: the order just before and after (`replayed`: a key's replay)."""

    old: OrderRead
    order: OrderRead
    replayed: bool = False


@dataclass(frozen=True)
class Canceled:
    """One cancel: the order as it was just before and after (reduced_by is the difference)."""

    order_id: uuid.UUID
    before: OrderRead | None = None
    order: OrderRead | None = None
    error: BatchError | None = None

    @property
    def reduced_by(self) -> int:
        if self.before is None or self.order is None:
            return 0
        return max(self.before.remaining_count - self.order.remaining_count, 0)


def _gate(ticker: str) -> asyncio.Lock:
    gate = _MARKET_GATES.get(ticker)
    if gate is None:
        if len(_MARKET_GATES) > 10_000:
            _MARKET_GATES.clear()
        gate = _MARKET_GATES[ticker] = asyncio.Lock()
    return gate


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code is None:
        cause = getattr(orig, "__cause__", None)
        code = getattr(cause, "sqlstate", None)
    return code if isinstance(code, str) else None


def _retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return any(name in str(exc) for name in RETRYABLE_CONSTRAINTS)
    return _sqlstate(exc) in RETRYABLE_SQLSTATES


async def _transaction(
    session: AsyncSession, fn: Callable[[], Awaitable[T]], ticker: str | None = None
) -> T:
    """Run `fn` and commit; on a retryable database error roll everything back and run it
    again (nothing of a failed attempt stays). The commit is the publish step: what the
    command changed in `ticker`'s book goes to the live feeds (pull.exchange.book_events)."""
    deadline = time.monotonic() + RETRY_SECONDS
    attempt = 0
    while True:
        try:
            result = await fn()
            tickers = read_cache.touched(session)
            await book_events.commit(session, ticker=ticker, result=result)
            await read_cache.committed(session, tickers)
            return result
        except DBAPIError as exc:
            await session.rollback()
            if not _retryable(exc):
                raise
            if time.monotonic() >= deadline:
                raise Busy(headers={"Retry-After": "1"}) from exc
        except BaseException:
            await session.rollback()
            raise
        attempt += 1
        await asyncio.sleep(random.uniform(0.0, min(0.25, 0.004 * 2**attempt)))


def _require_active(user: AuthUser) -> None:
    if user.status != "active":
        raise AccountRestricted()


def _batch_size(n: int) -> None:
    if n > MAX_BATCH:
        raise InvalidOrder(f"At most {MAX_BATCH} orders per batch", code="BATCH_TOO_LARGE")


def _batch_error(exc: AppError) -> BatchError:
    return BatchError(code=exc.code, message=exc.message, details=exc.details)


# --- commands ----------------------------------------------------------------------------------


def _order_key(data: OrderCreate, header_key: str | None) -> str | None:
    if header_key is None:
        return data.client_order_id
    key = check_key(header_key)
    if data.client_order_id is not None and data.client_order_id != key:
        raise InvalidIdempotencyKey("Idempotency-Key and client_order_id name different keys")
    return key


async def _place_once(
    session: AsyncSession,
    user: AuthUser,
    data: OrderCreate,
    key: str | None,
    market: LockedMarket | None = None,
) -> Placed:
    """One placement in the session's transaction (on `market` when the caller locked it);
    with a key, the kit's idempotency record makes a replay of the same order return the
    first result and any other order under the key 409."""
    if key is None:
        return Placed(
            await service.create_order(session=session, user_id=user.id, data=data, market=market)
        )
    result = await run_idempotent(
        session,
        owner=str(user.id),
        scope=ORDER_KEY_SCOPE,
        key=key,
        request=data.model_dump(mode="json", exclude={"client_order_id"}),
        status_code=201,
        handler=lambda: service.create_order(
            session=session, user_id=user.id, data=data, idempotency_key=key, market=market
        ),
    )
    return Placed(OrderRead.model_validate(result.body), replayed=result.replayed)


async def _place(
    session: AsyncSession, user: AuthUser, data: OrderCreate, key: str | None
) -> Placed:
    """One placement, its own transaction."""
    async with _gate(data.ticker):
        return await _transaction(
            session, lambda: _place_once(session, user, data, key), data.ticker
        )


# --- group commit ------------------------------------------------------------------------------
# Orders for one market that arrive in this process while its transaction is in flight go
# together into the next one (pull.kit.group_commit): one BEGIN/COMMIT, one market lock (one
# round trip, a sequence number per order) and one book-event record for the batch. An order
# refused before it wrote anything gets its error alone; one refused after writing makes the
# batch run again with a savepoint per order (_run_batch), so its batch-mates stay as they
# were either way; a retryable database error (deadlock) rolls the whole batch back and runs
# it again. Every caller
# is answered after the commit that holds its order. Two processes on one market stay correct
# because every batch, like every single order, holds the market's row lock to its commit.

_Order = tuple[AuthUser, OrderCreate, str | None]
_BATCHERS: dict[tuple[int, int], tuple[Any, GroupCommit[str, _Order, Placed]]] = {}


def _batcher(session: AsyncSession) -> GroupCommit[str, _Order, Placed] | None:
    """This process's group commit for the session's database (None: batching is off)."""
    max_batch = get_settings().exchange_order_batch_max
    bind = session.bind
    if max_batch <= 1 or not isinstance(bind, AsyncEngine):
        return None
    redis = session.info.get("redis")
    ident = (id(bind), id(redis))
    found = _BATCHERS.get(ident)
    if found is None:

        async def run(ticker: str, items: Sequence[_Order]) -> list[Placed | BaseException]:
            return await _place_many(bind, redis, ticker, items)

        # The engine and Redis client are kept with it, so their ids are not reused.
        found = _BATCHERS[ident] = ((bind, redis), GroupCommit(run, max_batch=max_batch))
    return found[1]


async def _place_many(
    bind: AsyncEngine, redis: Any, ticker: str, items: Sequence[_Order]
) -> list[Placed | BaseException]:
    """Place `items` (all on `ticker`) in one transaction, in arrival order."""
    async with AsyncSession(
        bind=bind, expire_on_commit=False, autoflush=False, info={"redis": redis}
    ) as session:
        if len(items) == 1:  # alone: no savepoint needed, its error is the transaction's
            user, data, key = items[0]
            try:
                return [await _place(session, user, data, key)]
            except Exception as exc:
                return [exc]

        async def attempt() -> list[Placed | BaseException]:
            done = await _run_batch(session, ticker, items, savepoints=False)
            if done is None:  # an order was refused after writing: again, each in a savepoint
                await session.rollback()
                done = await _run_batch(session, ticker, items, savepoints=True)
            assert done is not None
            return done

        async with _gate(ticker):
            return await _transaction(session, attempt, ticker)


async def _run_batch(
    session: AsyncSession, ticker: str, items: Sequence[_Order], *, savepoints: bool
) -> list[Placed | BaseException] | None:
    """The batch's orders on the market locked once for all of them (one round trip takes
    the lock and a sequence number per order). Without `savepoints` an order refused before
    it wrote anything (validation, a closed market, its limit, matching) gets its error and
    the others go on; one refused after writing (or any database error) makes this return
    None: the caller rolls the transaction back and runs the batch again with `savepoints`,
    where each order runs in a savepoint of its own (so it is undone alone, and the market's
    top of book as known here is restored). Orders with an idempotency key always run in a
    savepoint (their key's record is written first)."""
    market = await book_repo.lock_market(session, ticker, count=len(items))
    out: list[Placed | BaseException] = []
    for user, data, key in items:
        if market is None:
            out.append(MarketNotFound())
            continue
        before = (market.yes_bid, market.yes_ask)
        session.info[WROTE] = False
        try:
            if savepoints or key is not None:
                async with session.begin_nested():
                    out.append(await _place_once(session, user, data, key, market))
            else:
                out.append(await _place_once(session, user, data, key, market))
        except DBAPIError as exc:
            if _retryable(exc):
                raise  # the whole batch again (_transaction)
            if not (savepoints or key is not None):
                return None  # the transaction is aborted: again with savepoints
            market.yes_bid, market.yes_ask = before
            out.append(exc)
        except Exception as exc:  # refused (or broken): this caller's answer alone
            if savepoints or key is not None:
                market.yes_bid, market.yes_ask = before
            elif session.info[WROTE]:
                return None
            out.append(exc)
        market.seq += 1
    return out


async def place(
    *,
    session: AsyncSession,
    user: AuthUser,
    data: OrderCreate,
    idempotency_key: str | None = None,
) -> Placed:
    """Place one order. Its key is `client_order_id`, else `idempotency_key` (the app API's
    header; both given must agree): the same order again returns the first result
    (`replayed`), another order under the same key is 409 IDEMPOTENCY_KEY_REUSED. It goes
    into its market's next group commit (above); the answer comes after that commit."""
    _require_active(user)
    key = _order_key(data, idempotency_key)
    batcher = _batcher(session)
    if batcher is None:
        return await _place(session, user, data, key)
    return await batcher.submit(data.ticker, (user, data, key))


async def place_batch(
    *, session: AsyncSession, user: AuthUser, orders: Sequence[OrderCreate]
) -> list[BatchItem]:
    """Up to 20 orders, each placed (and committed) on its own, in the order given; a refused
    item carries its error and does not undo the others. Items are idempotent per
    client_order_id, like single orders."""
    _batch_size(len(orders))
    _require_active(user)
    items: list[BatchItem] = []
    for data in orders:
        try:
            read = (await _place(session, user, data, data.client_order_id)).order
        except AppError as exc:
            items.append(BatchItem(error=_batch_error(exc), client_order_id=data.client_order_id))
            continue
        items.append(
            BatchItem(order=read, client_order_id=data.client_order_id, order_id=read.order_id)
        )
    return items


@dataclass(frozen=True)
class _Key:
    """An optional idempotency key of a command on an order, and what it must mean."""

    scope: str
    key: str
    request: Any


async def _on_order(
    session: AsyncSession,
    user: AuthUser,
    order_id: uuid.UUID,
    run: Callable[[OrderRead], Awaitable[OrderRead]],
    key: _Key | None = None,
) -> Changed:
    """Run a command on one of the user's orders under its market's gate; `run` gets the
    order as read at the start of each attempt. With a key, the same request again returns
    the first result and another request under the key is 409 IDEMPOTENCY_KEY_REUSED."""
    first: OrderRead | None = await service.get_order(
        session=session, user_id=user.id, order_id=order_id
    )
    assert first is not None
    ticker = first.ticker
    async with _gate(ticker):

        async def attempt() -> Changed:
            nonlocal first
            before = first or await service.get_order(
                session=session, user_id=user.id, order_id=order_id
            )
            first = None
            if key is None:
                return Changed(old=before, order=await run(before))

            async def handler() -> dict[str, OrderRead]:
                return {"old": before, "order": await run(before)}

            result = await run_idempotent(
                session,
                owner=str(user.id),
                scope=key.scope,
                key=key.key,
                request={"order_id": str(order_id), "body": key.request},
                status_code=200,
                handler=handler,
            )
            return Changed(
                old=OrderRead.model_validate(result.body["old"]),
                order=OrderRead.model_validate(result.body["order"]),
                replayed=result.replayed,
            )

        return await _transaction(session, attempt, ticker)


def _key(scope: str, key: str | None, request: Any) -> _Key | None:
    return None if key is None else _Key(scope=scope, key=check_key(key), request=request)


async def amend(
    *,
    session: AsyncSession,
    user: AuthUser,
    order_id: uuid.UUID,
    data: OrderAmend | Callable[[OrderRead], OrderAmend],
    idempotency_key: str | None = None,
    request: Any = None,
) -> Changed:
    """New price and/or total count. `data` may be a function of the order as it is (the
    Trade API fills in what the request left out); `request` is then what the key must mean
    (by default the amend itself)."""
    _require_active(user)

    async def run(before: OrderRead) -> OrderRead:
        change = data(before) if callable(data) else data
        return await service.amend_order(
            session=session, user_id=user.id, order_id=order_id, data=change
        )

    if request is None and not callable(data):
        request = data.model_dump(mode="json")
    key = _key(AMEND_KEY_SCOPE, idempotency_key, request)
    return await _on_order(session, user, order_id, run, key)


async def decrease(
    *,
    session: AsyncSession,
    user: AuthUser,
    order_id: uuid.UUID,
    data: OrderDecrease,
    idempotency_key: str | None = None,
) -> Changed:
    """Lower a resting order's remaining count (restricted accounts too). With a key, a
    retried `reduce_by` decreases once."""

    async def run(_before: OrderRead) -> OrderRead:
        return await service.decrease_order(
            session=session, user_id=user.id, order_id=order_id, data=data
        )

    key = _key(DECREASE_KEY_SCOPE, idempotency_key, data.model_dump(mode="json"))
    return await _on_order(session, user, order_id, run, key)


async def cancel(*, session: AsyncSession, user: AuthUser, order_id: uuid.UUID) -> Canceled:
    """Cancel a resting order (restricted accounts too)."""

    async def run(_before: OrderRead) -> OrderRead:
        return await service.cancel_order(session=session, user_id=user.id, order_id=order_id)

    done = await _on_order(session, user, order_id, run)
    return Canceled(order_id=order_id, before=done.old, order=done.order)


async def cancel_batch(
    *, session: AsyncSession, user: AuthUser, order_ids: Sequence[uuid.UUID]
) -> list[Canceled]:
    """Up to 20 cancels, each on its own (restricted accounts too)."""
    _batch_size(len(order_ids))
    out: list[Canceled] = []
    for oid in order_ids:
        try:
            out.append(await cancel(session=session, user=user, order_id=oid))
        except AppError as exc:
            out.append(Canceled(order_id=oid, error=_batch_error(exc)))
    return out


async def market_command(
    *, session: AsyncSession, ticker: str, run: Callable[[], Awaitable[T]]
) -> T:
    """A change of a whole market's book (open, pause, close, resolve) as one unit of work."""
    async with _gate(ticker):
        return await _transaction(session, run, ticker)
