"""The sandbox broker: behaves like Alpaca's Broker API sandbox, state in its own tables.

- Accounts open ACTIVE at once; the firm account (PULL's, pre-funded) is created on first use.
- Market orders fill at the quote (buy at the ask, sell at the bid), in full. Limit orders fill
  when the quote crosses their price, up to the quoted size (the size is used up, so a small
  size gives partial fills); the rest rests. Stop orders trigger when the quote reaches the
  stop. ioc cancels the unfilled rest, fok fills in full or cancels.
- Equities trade only in NYSE's regular session (exchange_calendars' XNYS); outside it an order
  is `accepted` and routed at the next open, and a routed `day` order expires at the close.
  Crypto trades around the clock. The market clock can be pinned open or closed for tests.
- Every change is a trade event (Alpaca's `/v2/events/trades` shape, ULID ids), inserted at
  the end of its transaction under an advisory lock held until commit, so events commit in
  seq order and `since_id` never skips one (the locks: sandbox_repository).
Quotes default to each asset's reference price with a 0.02% spread; `set_quote` changes them
(and fills what now crosses) and can set the previous close that snapshots report (default:
the reference price; the previous day's bar).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.brokerage.models import (
    SandboxAccount,
    SandboxJournal,
    SandboxOrder,
)
from pull.brokerage.money import (
    CENT,
    QTY_PLACES,
    places,
    qty_floor,
)
from pull.brokerage.providers import sandbox_repository as repo
from pull.brokerage.providers import wire
from pull.brokerage.providers.base import (
    TERMINAL,
    Asset,
    BrokerAccount,
    BrokerNotFound,
    BrokerOrder,
    BrokerPosition,
    Heartbeat,
    Journal,
    OrderRequest,
    Person,
    Quote,
    ReplaceRequest,
    Snapshot,
    TradeEvent,
)
from pull.brokerage.providers.sandbox_engine import (
    CLOCK_KEY,
    DEFAULT_SIZE,
    EVENTS_KEY,
    FIRM_CASH,
    FIRM_KEY,
    SandboxEngine,
    _reject,
    _uuid,
    catalog,
    default_quote,
    previous_close_key,
    snapshot,
    ulid,
)
from pull.kit.db import utcnow


class SandboxBroker(SandboxEngine):
    is_sandbox = True

    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        *,
        poll_seconds: float = 0.2,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._maker = maker
        self._poll = poll_seconds
        self._clock = clock
        self._firm: str | None = None  # this broker's firm account id, once read

    @asynccontextmanager
    async def _tx(self, *, write: bool = True, shared: bool = False) -> AsyncIterator[AsyncSession]:
        """A transaction of the sandbox. Writers take the world lock (`shared`: orders and
        journals, which lock only their own rows in one order; otherwise exclusive); the
        trade events a transaction wrote are inserted at its end under the events lock, so
        they commit in seq order (sandbox_repository's locks)."""
        if not write:  # a read: no transaction of its own (no BEGIN/COMMIT round trips)
            async with self._maker() as session:
                await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                yield session
            return
        async with self._maker() as session, session.begin():
            await repo.lock_world(session, exclusive=not shared)
            yield session
            pending = session.info.pop(EVENTS_KEY, None)
            if pending:
                await repo.insert_events(session, pending)

    # --- market --------------------------------------------------------------------------------

    async def set_market_clock(self, value: str | None) -> None:
        """Pin the equity market `open` or `closed`, or follow the calendar (None)."""
        async with self._tx() as s:
            await repo.set_state(s, CLOCK_KEY, value)
            if value != "closed":
                await self._tick(s)

    async def get_quote(self, *, symbol: str) -> Quote:
        if symbol not in catalog():
            raise BrokerNotFound(f"symbol {symbol} not found", status=404, code=40410000)
        async with self._tx(write=False) as s:
            row = await repo.quote(s, symbol) or default_quote(symbol, self._clock())
            is_open = await self._market_open(s, catalog()[symbol][0].asset_class)
            return Quote(
                symbol=symbol,
                bid=row.bid,
                ask=row.ask,
                bid_size=row.bid_size,
                ask_size=row.ask_size,
                at=row.updated_at,
                market_open=is_open,
            )

    async def get_snapshots(self, *, symbols: Sequence[str]) -> dict[str, Snapshot]:
        """Each known symbol's previous close (set with `set_quote`, else its reference
        price), as the bar of the day before the sandbox clock's."""
        day = dt.datetime.combine(self._clock().astimezone(dt.UTC).date(), dt.time(), dt.UTC)
        out = {}
        async with self._tx(write=False) as s:
            for symbol in sorted(set(symbols) & set(catalog())):
                close = await repo.state(s, previous_close_key(symbol))
                price = Decimal(close) if close is not None else catalog()[symbol][1]
                out[symbol] = Snapshot(symbol, price, day - dt.timedelta(days=1))
        return out

    async def correct_fill(
        self,
        *,
        account_id: str,
        order_id: str,
        bust_qty: Decimal | None = None,
        price: Decimal | None = None,
    ) -> BrokerOrder:
        """Sandbox control: bust part of an order's fills, or correct their price."""
        async with self._tx() as s:
            row = await self._own_order(s, account_id, order_id, lock=True)
            await self._correct(s, row, bust_qty=bust_qty, price=price)
            return snapshot(row)

    async def set_quote(
        self,
        *,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        bid_size: Decimal = DEFAULT_SIZE,
        ask_size: Decimal = DEFAULT_SIZE,
        previous_close: Decimal | None = None,
    ) -> Quote:
        if symbol not in catalog():
            raise BrokerNotFound(f"symbol {symbol} not found", status=404, code=40410000)
        if bid <= 0 or ask < bid or bid_size < 0 or ask_size < 0:
            raise _reject("bid must be positive and at most ask; sizes non-negative")
        async with self._tx() as s:
            row = await self._quote_row(s, symbol)
            row.bid, row.ask, row.bid_size, row.ask_size = bid, ask, bid_size, ask_size
            row.updated_at = self._clock()
            if previous_close is not None:
                await repo.set_state(s, previous_close_key(symbol), str(previous_close))
            await repo.flush(s)
            await self._tick(s, symbol=symbol)
        return await self.get_quote(symbol=symbol)

    async def list_assets(self, *, query: str | None = None) -> list[Asset]:
        q = (query or "").strip().lower()
        return [
            a
            for a, _ in catalog().values()
            if not q or q in a.symbol.lower() or q in a.name.lower()
        ]

    async def get_asset(self, *, symbol: str) -> Asset | None:
        found = catalog().get(symbol)
        return found[0] if found else None

    # --- accounts and journals -----------------------------------------------------------------

    async def firm_account_id(self) -> str:
        if self._firm is not None:
            return self._firm
        async with self._maker() as s:
            found = await repo.state(s, FIRM_KEY)
        if found:
            self._firm = str(found)
            return self._firm
        async with self._tx() as s:
            found = await repo.state(s, FIRM_KEY)
            if found:
                return str(found)
            firm = SandboxAccount(
                id=uuid.uuid4(),
                account_number="FIRM" + uuid.uuid4().hex[:8].upper(),
                kind="firm",
                status="ACTIVE",
                cash=FIRM_CASH,
                contact={},
            )
            repo.add(s, firm)
            await repo.set_state(s, FIRM_KEY, str(firm.id))
            return str(firm.id)

    async def create_account(self, *, person: Person) -> BrokerAccount:
        if not person.given_name or not person.family_name or not person.email:
            raise _reject("contact and identity are required", status=400, code=40010001)
        async with self._tx() as s:
            number = f"9{await repo.account_count(s) + 1:08d}{uuid.uuid4().hex[:3].upper()}"
            row = SandboxAccount(
                id=uuid.uuid4(),
                account_number=number,
                kind="customer",
                status="ACTIVE",
                cash=Decimal("0.00"),
                contact={"reference": person.reference},
            )
            repo.add(s, row)
            await repo.flush(s)
            return BrokerAccount(id=str(row.id), account_number=number, status=row.status)

    async def get_account(self, *, account_id: str) -> BrokerAccount:
        async with self._tx(write=False) as s:
            row = await repo.account(s, _uuid(account_id))
            if row is None:
                raise BrokerNotFound("account not found", status=404, code=40410000)
            reserved = await repo.reserved_cash(s, row.id)
            return BrokerAccount(
                id=str(row.id),
                account_number=row.account_number,
                status=row.status,
                cash=row.cash,
                buying_power=row.cash - reserved,
            )

    async def create_journal(
        self, *, from_account: str, to_account: str, amount: Decimal, description: str
    ) -> Journal:
        if amount <= 0 or places(amount) > 2:
            raise _reject("amount must be positive with at most 2 decimals", status=400)
        firm = _uuid(await self.firm_account_id())
        async with self._tx(shared=True) as s:
            # The customers' rows are locked (in id order). The firm's, the other side of
            # nearly every journal, is not: its cash moves by one conditional UPDATE as the
            # transaction's last statement, so journals do not queue on it.
            src_id, dst_id = _uuid(from_account), _uuid(to_account)
            credited = False
            if src_id == firm and dst_id != firm:
                # the firm funds a customer (every buy order): the customer's row is locked
                # and credited by one UPDATE, which also says whether it exists
                if not await repo.credit_cash(s, dst_id, amount):
                    raise BrokerNotFound("account not found", status=404, code=40410000)
                credited = True
            else:
                locked = await repo.accounts_locked(s, [i for i in (src_id, dst_id) if i != firm])
                for i in (src_id, dst_id):
                    if i != firm and i not in locked:
                        raise BrokerNotFound("account not found", status=404, code=40410000)
                if src_id != firm:
                    src = locked[src_id]
                    if src.cash - await repo.reserved_cash(s, src.id) < amount:
                        raise _reject("insufficient balance for journal", code=40310000, status=403)
            journal = SandboxJournal(
                id=uuid.uuid4(),
                from_account=src_id,
                to_account=dst_id,
                amount=amount,
                status="executed",
                description=description[:200],
            )
            repo.add_journal(s, journal)
            await repo.flush(s)
            for i, delta in ((src_id, -amount), (dst_id, amount)):
                if i != firm and not (credited and i == dst_id):
                    await repo.move_cash(s, i, delta)
            if src_id == firm:
                if not await repo.take_cash(s, firm, amount):
                    raise _reject("insufficient balance for journal", code=40310000, status=403)
            elif dst_id == firm:
                await repo.move_cash(s, firm, amount)
            return Journal(
                id=str(journal.id),
                from_account=str(src_id),
                to_account=str(dst_id),
                amount=amount,
                status="executed",
                description=journal.description or "",
            )

    async def list_journals(
        self,
        *,
        from_account: str,
        to_account: str,
        since: dt.date,
        description: str | None = None,
    ) -> list[Journal]:
        """Journals between two accounts made on or after `since` (Alpaca's GET journals)."""
        async with self._tx(write=False) as s:
            rows = await repo.journals(
                s,
                from_account=_uuid(from_account),
                to_account=_uuid(to_account),
                since=dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC),
                description=description[:200] if description is not None else None,
            )
            return [
                Journal(
                    id=str(row.id),
                    from_account=str(row.from_account),
                    to_account=str(row.to_account),
                    amount=row.amount,
                    status=row.status,
                    description=row.description or "",
                )
                for row in rows
            ]

    async def find_journal(
        self, *, from_account: str, to_account: str, description: str, since: dt.date
    ) -> Journal | None:
        found = await self.list_journals(
            from_account=from_account, to_account=to_account, since=since, description=description
        )
        return found[0] if found else None

    # --- orders --------------------------------------------------------------------------------

    async def submit_order(self, *, account_id: str, request: OrderRequest) -> BrokerOrder:
        found = catalog().get(request.symbol)
        if found is None:
            raise _reject(f"asset {request.symbol} not found", code=40410000)
        asset = found[0]
        self._validate(request, asset)
        async with self._tx(shared=True) as s:
            acct = await repo.account(s, _uuid(account_id), lock=True)
            if acct is None or acct.kind != "customer":
                raise BrokerNotFound("account not found", status=404, code=40410000)
            if acct.status != "ACTIVE":
                raise _reject("account is not active", status=403, code=40310000)
            if await repo.order_by_client_id(s, acct.id, request.client_order_id):
                raise _reject("client_order_id must be unique", code=40010001)
            # a market order does not use up the quote's size: no lock on the quote row
            quote = await self._quote_row(s, asset.symbol, lock=request.type != "market")
            reserve = Decimal(0)
            if request.side == "buy":
                reserve = self._buy_reserve(
                    request.type,
                    request.qty,
                    request.notional,
                    request.limit_price,
                    request.stop_price,
                    quote,
                )
                if request.notional is None and request.qty is not None and request.qty % 1:
                    if reserve < 1:
                        raise _reject("cost basis must be >= 1.00", status=403, code=40310000)
                if request.notional is not None and request.notional < 1:
                    raise _reject("cost basis must be >= 1.00", status=403, code=40310000)
                available = acct.cash - await repo.reserved_cash(s, acct.id)
                if reserve > available:
                    raise _reject("insufficient buying power", status=403, code=40310000)
            else:
                wanted = request.qty
                if wanted is None and request.notional is not None:
                    wanted = qty_floor(request.notional / quote.bid)
                pos = await repo.position(s, acct.id, asset.symbol)
                have = (pos.qty if pos else Decimal(0)) - await repo.sell_reserved(
                    s, acct.id, asset.symbol
                )
                if wanted is None or wanted > have:
                    raise _reject(
                        f"insufficient qty available for order (requested: {wanted}, "
                        f"available: {have})",
                        status=403,
                        code=40310000,
                    )
            now = self._clock()
            routed = await self._market_open(s, asset.asset_class)
            row = SandboxOrder(
                id=uuid.uuid4(),
                account_id=acct.id,
                client_order_id=request.client_order_id,
                symbol=asset.symbol,
                asset_class=asset.asset_class,
                side=request.side,
                type=request.type,
                time_in_force=request.time_in_force,
                qty=request.qty,
                notional=request.notional,
                limit_price=request.limit_price,
                stop_price=request.stop_price,
                status="new" if routed else "accepted",
                resting=True,
                filled_qty=Decimal(0),
                filled_notional=Decimal(0),
                reserved_cash=reserve,
                created_at=now,
                updated_at=now,
            )
            repo.add(s, row)
            if routed:  # inserted once, as matching leaves it (no autoflush before)
                self._event(s, row, "new")
                with s.no_autoflush:
                    await self._match(s, row, quote)
            await repo.flush(s)
            return snapshot(row)

    async def _own_order(
        self, session: AsyncSession, account_id: str, order_id: str, *, lock: bool
    ) -> SandboxOrder:
        row = await repo.order(session, _uuid(order_id), lock=lock)
        if row is None or row.account_id != _uuid(account_id):
            raise BrokerNotFound("order not found", status=404, code=40410000)
        return row

    async def get_order(self, *, account_id: str, order_id: str) -> BrokerOrder:
        async with self._tx(write=False) as s:
            return snapshot(await self._own_order(s, account_id, order_id, lock=False))

    async def get_order_by_client_id(
        self, *, account_id: str, client_order_id: str
    ) -> BrokerOrder | None:
        async with self._tx(write=False) as s:
            row = await repo.order_by_client_id(s, _uuid(account_id), client_order_id)
            return snapshot(row) if row else None

    async def list_orders(
        self, *, account_id: str, after: dt.datetime | None = None, limit: int = 500
    ) -> list[BrokerOrder]:
        async with self._tx(write=False) as s:
            rows = await repo.orders(s, _uuid(account_id), after=after, limit=limit)
            return [snapshot(r) for r in rows]

    async def cancel_order(self, *, account_id: str, order_id: str) -> None:
        async with self._tx() as s:
            row = await self._own_order(s, account_id, order_id, lock=True)
            if row.status in TERMINAL:
                raise _reject(f'order is already in "{row.status}" state', code=42210000)
            self._finish(row, "canceled")
            await repo.flush(s)
            self._event(s, row, "canceled")

    async def replace_order(
        self, *, account_id: str, order_id: str, request: ReplaceRequest
    ) -> BrokerOrder:
        async with self._tx() as s:
            old = await self._own_order(s, account_id, order_id, lock=True)
            if old.status in TERMINAL:
                raise _reject(f'order is already in "{old.status}" state', code=42210000)
            if old.notional is not None:
                raise _reject("notional orders cannot be replaced", code=42210000)
            assert old.qty is not None
            qty = request.qty if request.qty is not None else old.qty - old.filled_qty
            if qty <= 0 or places(qty) > 9:
                raise _reject("qty must be positive with at most 9 decimals")
            limit = request.limit_price if request.limit_price is not None else old.limit_price
            stop = request.stop_price if request.stop_price is not None else old.stop_price
            if old.type in ("market", "stop") and request.limit_price is not None:
                raise _reject("limit_price is only for limit orders")
            if await repo.order_by_client_id(s, old.account_id, request.client_order_id):
                raise _reject("client_order_id must be unique", code=40010001)
            quote = await self._quote_row(s, old.symbol)
            reserve = Decimal(0)
            if old.side == "buy":
                reserve = self._buy_reserve(old.type, qty, None, limit, stop, quote)
                acct = await repo.account(s, old.account_id, lock=True)
                assert acct is not None
                available = acct.cash - await repo.reserved_cash(s, acct.id) + old.reserved_cash
                if reserve > available:
                    raise _reject("insufficient buying power", status=403, code=40310000)
            now = self._clock()
            new = SandboxOrder(
                id=uuid.uuid4(),
                account_id=old.account_id,
                client_order_id=request.client_order_id,
                symbol=old.symbol,
                asset_class=old.asset_class,
                side=old.side,
                type=old.type,
                time_in_force=request.time_in_force or old.time_in_force,
                qty=qty,
                notional=None,
                limit_price=limit,
                stop_price=stop,
                status=old.status if old.status == "accepted" else "new",
                resting=True,
                filled_qty=Decimal(0),
                filled_notional=Decimal(0),
                reserved_cash=reserve,
                replaces=old.id,
                created_at=now,
                updated_at=now,
            )
            repo.add(s, new)
            old.replaced_by = new.id
            self._finish(old, "replaced")
            await repo.flush(s)
            self._event(s, old, "replaced")
            if new.status == "new":
                self._event(s, new, "new")
                await self._match(s, new, quote)
            return snapshot(new)

    async def list_positions(self, *, account_id: str) -> list[BrokerPosition]:
        async with self._tx(write=False) as s:
            out = []
            for p in await repo.positions(s, _uuid(account_id)):
                q = await repo.quote(s, p.symbol) or default_quote(p.symbol, self._clock())
                mid = ((q.bid + q.ask) / 2).quantize(Decimal("0.0001"))
                out.append(
                    BrokerPosition(
                        symbol=p.symbol,
                        asset_class=p.asset_class,
                        qty=p.qty,
                        avg_entry_price=(p.cost / p.qty).quantize(Decimal("0.0001")),
                        cost_basis=p.cost.quantize(CENT),
                        current_price=mid,
                        market_value=(p.qty * mid).quantize(CENT),
                    )
                )
            return out

    # --- time passing ----------------------------------------------------------------------------

    async def tick(self) -> None:
        """Route queued orders at the open, expire routed day orders at the close."""
        async with self._tx() as s:
            await self._tick(s)

    # --- the event stream ------------------------------------------------------------------------

    async def _start_seq(self, since_id: str | None, since: dt.datetime | None) -> int:
        async with self._tx(write=False) as s:
            if since_id:
                seq = await repo.event_seq(s, since_id)
                if seq is None:
                    raise _reject("invalid since_id", status=400, code=40010001)
                return seq
            if since is not None:
                return await repo.first_seq_since(s, since)
            return await repo.last_seq(s)

    async def events_page(
        self, *, since_id: str | None, since: dt.datetime | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        seq = await self._start_seq(since_id, since)
        async with self._tx(write=False) as s:
            return [p for _, p in await repo.payloads_after(s, seq, limit)]

    async def open_stream(
        self, *, since_id: str | None, since: dt.datetime | None = None
    ) -> AsyncIterator[TradeEvent | Heartbeat]:
        """Resolve the start first (an unknown since_id raises here), then stream."""
        seq = await self._start_seq(since_id, since)
        return self._events_from(seq)

    async def _events_from(self, seq: int) -> AsyncIterator[TradeEvent | Heartbeat]:
        while True:
            async with self._tx(write=False) as s:
                rows = await repo.payloads_after(s, seq, 500)
            for _, payload in rows:
                yield wire.parse_event(payload)
            if rows:
                seq = rows[-1][0]
            if not rows:
                yield Heartbeat()
                await asyncio.sleep(self._poll)

    async def trade_events(
        self, *, since_id: str | None, since: dt.datetime | None = None
    ) -> AsyncIterator[TradeEvent | Heartbeat]:
        seq = await self._start_seq(since_id, since)
        async for item in self._events_from(seq):
            yield item


__all__ = ["QTY_PLACES", "SandboxBroker", "catalog", "snapshot", "ulid"]
