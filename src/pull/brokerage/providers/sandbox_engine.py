"""The sandbox broker's engine: its constants and order snapshots, the market clock and quotes,
order validation, matching against the quote (fills, partial fills, stops, ioc/fok), and the
trade events every change writes. `SandboxBroker` (sandbox.py) is the Broker API around it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from importlib.resources import files

from sqlalchemy.ext.asyncio import AsyncSession

from pull.brokerage import hours
from pull.brokerage.models import (
    SandboxOrder,
    SandboxPosition,
    SandboxQuote,
)
from pull.brokerage.money import (
    avg_price,
    cents_ceil,
    cum_cents,
    dollars,
    places,
    qty_floor,
)
from pull.brokerage.providers import sandbox_repository as repo
from pull.brokerage.providers import wire
from pull.brokerage.providers.base import (
    Asset,
    BrokerNotFound,
    BrokerOrder,
    BrokerRejected,
    OrderRequest,
    TradeEvent,
)

FIRM_CASH = Decimal("1000000000.00")
DEFAULT_SIZE = Decimal(1_000_000)
SPREAD = Decimal("0.0001")  # half of a 0.02% spread
CLOCK_KEY = "market_clock"
FIRM_KEY = "firm_account"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_last_ulid = [0]  # monotonic within the process (benign: ids only ever grow)
EVENTS_KEY = "sandbox_events"  # session.info: the transaction's events, inserted at its end


def ulid() -> str:
    """A ULID: 48-bit millisecond time then 80 random bits, Crockford base32; monotonic in
    this process (within a millisecond the next one is the last + 1), so a transaction's
    events sort in the order they happened."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    if value <= _last_ulid[0]:
        value = _last_ulid[0] + 1
    _last_ulid[0] = value
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


@lru_cache(maxsize=1)
def catalog() -> dict[str, tuple[Asset, Decimal]]:
    raw = json.loads(files("pull.brokerage").joinpath("data/assets.json").read_text())
    out: dict[str, tuple[Asset, Decimal]] = {}
    for item in raw:
        asset = Asset(
            id=wire.asset_id(item["symbol"]),
            symbol=item["symbol"],
            name=item["name"],
            asset_class=item["class"],
            exchange=item["exchange"],
            tradable=item.get("tradable", True),
            fractionable=item.get("fractionable", True),
        )
        out[asset.symbol] = (asset, Decimal(item["price"]))
    return out


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise BrokerNotFound("not found", status=404, code=40410000) from exc


def _reject(message: str, status: int = 422, code: int = 42210000) -> BrokerRejected:
    return BrokerRejected(message, status=status, code=code)


def snapshot(o: SandboxOrder) -> BrokerOrder:
    avg = avg_price(o.filled_notional, o.filled_qty) if o.filled_qty > 0 else None
    return BrokerOrder(
        id=str(o.id),
        client_order_id=o.client_order_id,
        account_id=str(o.account_id),
        symbol=o.symbol,
        asset_class=o.asset_class,
        side=o.side,
        type=o.type,
        time_in_force=o.time_in_force,
        status=o.status,
        qty=o.qty if o.notional is None else None,
        notional=o.notional,
        filled_qty=o.filled_qty,
        filled_avg_price=avg,
        limit_price=o.limit_price,
        stop_price=o.stop_price,
        created_at=o.created_at,
        updated_at=o.updated_at,
        replaced_by=str(o.replaced_by) if o.replaced_by else None,
        replaces=str(o.replaces) if o.replaces else None,
    )


def previous_close_key(symbol: str) -> str:
    """The sandbox state key of a symbol's previous close (`set_quote`, snapshots)."""
    return f"prev_close:{symbol}"


def default_quote(symbol: str, at: dt.datetime) -> SandboxQuote:
    """The quote of a symbol nobody set: its reference price with a 0.02% spread."""
    ref = catalog()[symbol][1]
    half = (ref * SPREAD).quantize(Decimal("0.0001")) or Decimal("0.0001")
    return SandboxQuote(
        symbol=symbol,
        bid=ref - half,
        ask=ref + half,
        bid_size=DEFAULT_SIZE,
        ask_size=DEFAULT_SIZE,
        updated_at=at,
    )


class SandboxEngine:
    """Matching and market state, used inside the broker's write transactions."""

    _clock: Callable[[], dt.datetime]

    async def _market_open(self, session: AsyncSession, asset_class: str) -> bool:
        if asset_class == "crypto":
            return True
        pinned = await repo.state(session, CLOCK_KEY)
        if pinned in ("open", "closed"):
            return bool(pinned == "open")
        return hours.equities_open(self._clock())

    async def _quote_row(
        self, session: AsyncSession, symbol: str, *, lock: bool = True
    ) -> SandboxQuote:
        """The symbol's quote row (created at its default on first use); `lock` takes it
        FOR UPDATE (what consumes its size: limit fills, quote changes)."""
        row = await repo.quote(session, symbol, lock=lock)
        if row is not None:
            return row
        await repo.ensure_quote(session, default_quote(symbol, self._clock()))
        row = await repo.quote(session, symbol, lock=lock)
        assert row is not None
        return row

    def _validate(self, req: OrderRequest, asset: Asset) -> None:
        if req.side not in ("buy", "sell"):
            raise _reject("side must be buy or sell")
        if req.type not in ("market", "limit", "stop", "stop_limit"):
            raise _reject(f"invalid order type {req.type!r}")
        if req.time_in_force not in ("day", "gtc", "ioc", "fok", "opg", "cls"):
            raise _reject(f"invalid time_in_force {req.time_in_force!r}")
        if (req.qty is None) == (req.notional is None):
            raise _reject("exactly one of qty or notional is required", status=400, code=40010001)
        if req.qty is not None and (req.qty <= 0 or places(req.qty) > 9):
            raise _reject("qty must be positive with at most 9 decimals")
        if req.notional is not None:
            if req.notional <= 0 or places(req.notional) > 2:
                raise _reject("notional must be positive with at most 2 decimals")
            if req.type != "market":
                raise _reject("notional orders must be market orders")
        needs_limit = req.type in ("limit", "stop_limit")
        needs_stop = req.type in ("stop", "stop_limit")
        if needs_limit != (req.limit_price is not None):
            raise _reject("limit_price is required for limit orders and only for them")
        if needs_stop != (req.stop_price is not None):
            raise _reject("stop_price is required for stop orders and only for them")
        for price in (req.limit_price, req.stop_price):
            if price is not None and price <= 0:
                raise _reject("prices must be positive")
        if not asset.tradable:
            raise _reject(f"asset {asset.symbol} is not tradable", code=42210000)
        fractional = req.notional is not None or (req.qty is not None and req.qty % 1 != 0)
        if asset.asset_class == "crypto":
            if req.time_in_force not in ("gtc", "ioc"):
                raise _reject("crypto orders take time_in_force gtc or ioc")
            if req.type == "stop":
                raise _reject("crypto orders are market, limit or stop_limit")
        elif fractional:
            if not asset.fractionable:
                raise _reject(f"asset {asset.symbol} is not fractionable")
            if req.time_in_force != "day":
                raise _reject("fractional orders must be day orders")

    @staticmethod
    def _buy_reserve(
        type_: str,
        qty: Decimal | None,
        notional: Decimal | None,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
        quote: SandboxQuote,
    ) -> Decimal:
        if notional is not None:
            return notional
        assert qty is not None
        if type_ in ("limit", "stop_limit") and limit_price is not None:
            price = limit_price
        elif type_ == "stop" and stop_price is not None:
            price = max(stop_price, quote.ask)
        else:
            price = quote.ask
        return dollars(cents_ceil(qty * price))

    def _event(
        self,
        session: AsyncSession,
        row: SandboxOrder,
        event: str,
        *,
        execution_id: str | None = None,
        price: Decimal | None = None,
        qty: Decimal | None = None,
        position_qty: Decimal | None = None,
    ) -> None:
        e = TradeEvent(
            event_id=ulid(),
            event=event,
            account_id=str(row.account_id),
            order=snapshot(row),
            at=self._clock(),
            execution_id=execution_id,
            price=price,
            qty=qty,
            position_qty=position_qty,
        )
        session.info.setdefault(EVENTS_KEY, []).append(
            (e.event_id, row.account_id, wire.event_json(e))
        )

    def _finish(self, row: SandboxOrder, status: str) -> None:
        row.status = status
        row.resting = False
        row.reserved_cash = Decimal(0)
        row.updated_at = self._clock()

    async def _match(self, session: AsyncSession, row: SandboxOrder, quote: SandboxQuote) -> None:
        """Fill what the quote allows; ioc/fok cancel what it does not."""
        if row.status not in ("new", "partially_filled"):
            return
        buy = row.side == "buy"
        px = quote.ask if buy else quote.bid
        kind = row.type
        if kind in ("stop", "stop_limit"):
            assert row.stop_price is not None
            triggered = px >= row.stop_price if buy else px <= row.stop_price
            if not triggered:
                if row.time_in_force in ("ioc", "fok"):
                    self._finish(row, "canceled")
                    self._event(session, row, "canceled")
                return
            kind = "market" if kind == "stop" else "limit"
        if kind == "limit":
            assert row.limit_price is not None
            crosses = px <= row.limit_price if buy else px >= row.limit_price
        else:
            crosses = True
        if row.notional is not None:
            remaining = qty_floor(row.notional / px) if row.qty is None else Decimal(0)
            if not buy:
                pos = await repo.position(session, row.account_id, row.symbol)
                remaining = min(remaining, pos.qty if pos else Decimal(0))
        else:
            assert row.qty is not None
            remaining = row.qty - row.filled_qty
        fill = Decimal(0)
        if crosses and remaining > 0:
            size = quote.ask_size if buy else quote.bid_size
            fill = remaining if kind == "market" else min(remaining, size)
        if row.time_in_force == "fok" and fill < remaining:
            fill = Decimal(0)
        if fill > 0:
            if row.notional is not None:
                row.qty = fill
            if kind != "market":
                if buy:
                    quote.ask_size -= fill
                else:
                    quote.bid_size -= fill
            await self._execute(session, row, fill, px)
        if row.status in ("new", "partially_filled") and row.time_in_force in ("ioc", "fok"):
            self._finish(row, "canceled")
            self._event(session, row, "canceled")
        if row.notional is not None and row.status in ("new", "partially_filled") and fill == 0:
            self._finish(row, "canceled")
            self._event(session, row, "canceled")

    async def _execute(
        self, session: AsyncSession, row: SandboxOrder, qty: Decimal, price: Decimal
    ) -> None:
        before = cum_cents(row.filled_qty, snapshot(row).filled_avg_price)
        row.filled_qty += qty
        row.filled_notional += qty * price
        after = cum_cents(row.filled_qty, avg_price(row.filled_notional, row.filled_qty))
        cash = dollars(after - before)
        buy = row.side == "buy"
        await repo.move_cash(session, row.account_id, -cash if buy else cash)
        if buy:  # one upsert, no read (a session's loaded position row is re-read after it)
            position_qty = await repo.add_to_position(
                session, row.account_id, row.symbol, row.asset_class, qty=qty, cost=cash
            )
        else:
            pos = await repo.position(session, row.account_id, row.symbol, lock=True)
            if pos is None:
                pos = SandboxPosition(
                    account_id=row.account_id,
                    symbol=row.symbol,
                    asset_class=row.asset_class,
                    qty=Decimal(0),
                    cost=Decimal(0),
                )
                repo.add(session, pos)
            share = pos.cost * qty / pos.qty if pos.qty else Decimal(0)
            pos.qty -= qty
            pos.cost = Decimal(0) if pos.qty == 0 else pos.cost - share
            position_qty = pos.qty
        total = row.qty if row.qty is not None else row.filled_qty
        done = row.filled_qty >= total
        if buy:
            row.reserved_cash = max(Decimal(0), row.reserved_cash - cash)
        if done:
            self._finish(row, "filled")
        else:
            row.status = "partially_filled"
            row.updated_at = self._clock()
        await repo.flush(session)
        self._event(
            session,
            row,
            "fill" if done else "partial_fill",
            execution_id=str(uuid.uuid4()),
            price=price,
            qty=qty,
            position_qty=position_qty,
        )

    async def _correct(
        self,
        session: AsyncSession,
        row: SandboxOrder,
        *,
        bust_qty: Decimal | None,
        price: Decimal | None,
    ) -> None:
        """What an exchange's trade correction does at Alpaca: `bust_qty` of the order's
        fills canceled (at their average price: `trade_bust`), or the average price corrected
        to `price` (`trade_correct`); cash and position move by the cumulative difference."""
        before = cum_cents(row.filled_qty, snapshot(row).filled_avg_price)
        avg = row.filled_notional / row.filled_qty if row.filled_qty else Decimal(0)
        if bust_qty is not None:
            if not 0 < bust_qty <= row.filled_qty:
                raise _reject("bust qty must be positive and at most the filled qty")
            row.filled_qty -= bust_qty
            row.filled_notional = row.filled_qty * avg
            event, qty = "trade_bust", bust_qty
        else:
            if price is None or price <= 0 or row.filled_qty == 0:
                raise _reject("a correction needs a positive price and a filled order")
            row.filled_notional = row.filled_qty * price
            event, qty = "trade_correct", Decimal(0)
        after = cum_cents(row.filled_qty, snapshot(row).filled_avg_price)
        back = dollars(before - after)  # what the fills are now worth less
        buy = row.side == "buy"
        await repo.move_cash(session, row.account_id, back if buy else -back)
        pos = await repo.position(session, row.account_id, row.symbol, lock=True)
        if pos is not None:
            if buy:
                pos.qty -= qty
                pos.cost -= back
            else:
                pos.qty += qty
                pos.cost += qty * avg
        row.updated_at = self._clock()
        await repo.flush(session)
        self._event(
            session,
            row,
            event,
            execution_id=str(uuid.uuid4()),
            price=snapshot(row).filled_avg_price,
            qty=qty,
            position_qty=pos.qty if pos is not None else Decimal(0),
        )

    async def _tick(self, s: AsyncSession, *, symbol: str | None = None) -> None:
        open_equities = await self._market_open(s, "us_equity")
        for row in await repo.resting(s, symbol=symbol):
            is_open = open_equities or row.asset_class == "crypto"
            if row.status == "accepted":
                if not is_open:
                    continue
                row.status = "new"
                row.updated_at = self._clock()
                await repo.flush(s)
                self._event(s, row, "new")
            elif not is_open:
                if row.time_in_force == "day" and row.status in ("new", "partially_filled"):
                    self._finish(row, "expired")
                    await repo.flush(s)
                    self._event(s, row, "expired")
                continue
            await self._match(s, row, await self._quote_row(s, row.symbol))
