"""Alpaca's wire shapes: Broker API JSON to the Protocol's value types and back.

Numbers travel as decimal strings and are parsed to `Decimal`; timestamps are RFC 3339.
`AlpacaBroker` parses what Alpaca sends; the sandbox renders the same shapes for its events
and for `alpaca_routes` (the sandbox served as Alpaca's HTTP API).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from pull.brokerage.money import fmt, to_decimal
from pull.brokerage.providers.base import (
    Asset,
    BrokerAccount,
    BrokerOrder,
    BrokerPosition,
    Journal,
    Quote,
    Snapshot,
    TradeEvent,
)

_NS = uuid.UUID("5d1f8c0e-4a6b-4f57-9a43-3b7f3c2a9e10")


def asset_id(symbol: str) -> str:
    return str(uuid.uuid5(_NS, symbol))


def ts(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_ts(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    text = str(value).replace("Z", "+00:00")
    # Alpaca sends nanoseconds; Python keeps microseconds
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tail}"
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _dec(value: Any) -> Decimal | None:
    return to_decimal(value)


# --- orders --------------------------------------------------------------------------------------


def order_json(o: BrokerOrder, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    status = o.status
    body: dict[str, Any] = {
        "id": o.id,
        "client_order_id": o.client_order_id,
        "created_at": ts(o.created_at),
        "updated_at": ts(o.updated_at),
        "submitted_at": ts(o.created_at),
        "filled_at": ts(o.updated_at) if status == "filled" else None,
        "expired_at": ts(o.updated_at) if status == "expired" else None,
        "canceled_at": ts(o.updated_at) if status == "canceled" else None,
        "failed_at": ts(o.updated_at) if status == "rejected" else None,
        "replaced_at": ts(o.updated_at) if status == "replaced" else None,
        "replaced_by": o.replaced_by,
        "replaces": o.replaces,
        "asset_id": asset_id(o.symbol),
        "symbol": o.symbol,
        "asset_class": o.asset_class,
        "notional": fmt(o.notional),
        "qty": fmt(o.qty),
        "filled_qty": fmt(o.filled_qty) or "0",
        "filled_avg_price": fmt(o.filled_avg_price),
        "order_class": "simple",
        "order_type": o.type,
        "type": o.type,
        "side": o.side,
        "position_intent": "buy_to_open" if o.side == "buy" else "sell_to_close",
        "time_in_force": o.time_in_force,
        "limit_price": fmt(o.limit_price),
        "stop_price": fmt(o.stop_price),
        "status": status,
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "commission": "0",
    }
    if extra:
        body.update(extra)
    return body


def parse_order(body: dict[str, Any], *, account_id: str = "") -> BrokerOrder:
    return BrokerOrder(
        id=str(body["id"]),
        client_order_id=str(body.get("client_order_id") or ""),
        account_id=str(body.get("account_id") or account_id),
        symbol=str(body.get("symbol") or ""),
        asset_class=str(body.get("asset_class") or "us_equity"),
        side=str(body.get("side") or ""),
        type=str(body.get("type") or body.get("order_type") or ""),
        time_in_force=str(body.get("time_in_force") or ""),
        status=str(body.get("status") or ""),
        qty=_dec(body.get("qty")),
        notional=_dec(body.get("notional")),
        filled_qty=_dec(body.get("filled_qty")) or Decimal(0),
        filled_avg_price=_dec(body.get("filled_avg_price")),
        limit_price=_dec(body.get("limit_price")),
        stop_price=_dec(body.get("stop_price")),
        created_at=parse_ts(body.get("created_at") or body.get("submitted_at")),
        updated_at=parse_ts(body.get("updated_at") or body.get("created_at")),
        replaced_by=str(body["replaced_by"]) if body.get("replaced_by") else None,
        replaces=str(body["replaces"]) if body.get("replaces") else None,
    )


# --- trade events ----------------------------------------------------------------------------


def event_json(e: TradeEvent) -> dict[str, Any]:
    return {
        "account_id": e.account_id,
        "at": ts(e.at),
        "event": e.event,
        "event_id": e.event_id,
        "execution_id": e.execution_id,
        "order": order_json(e.order),
        "price": fmt(e.price),
        "qty": fmt(e.qty),
        "position_qty": fmt(e.position_qty),
        "timestamp": ts(e.at),
    }


def parse_event(body: dict[str, Any]) -> TradeEvent:
    account_id = str(body.get("account_id") or "")
    return TradeEvent(
        event_id=str(body.get("event_id") or body.get("id") or ""),
        event=str(body["event"]),
        account_id=account_id,
        order=parse_order(body["order"], account_id=account_id),
        at=parse_ts(body.get("at") or body.get("timestamp")),
        execution_id=str(body["execution_id"]) if body.get("execution_id") else None,
        price=_dec(body.get("price")),
        qty=_dec(body.get("qty")),
        position_qty=_dec(body.get("position_qty")),
    )


# --- accounts, journals, positions, assets, quotes ------------------------------------------


def account_json(a: BrokerAccount, *, created_at: dt.datetime) -> dict[str, Any]:
    return {
        "id": a.id,
        "account_number": a.account_number,
        "status": a.status,
        "crypto_status": a.status,
        "currency": "USD",
        "last_equity": fmt(a.cash) or "0",
        "created_at": ts(created_at),
        "account_type": "trading",
        "enabled_assets": ["us_equity", "crypto"],
    }


def trade_account_json(a: BrokerAccount) -> dict[str, Any]:
    return {
        "id": a.id,
        "account_number": a.account_number,
        "status": a.status,
        "currency": "USD",
        "cash": fmt(a.cash) or "0",
        "cash_withdrawable": fmt(a.cash) or "0",
        "buying_power": fmt(a.buying_power) or "0",
        "equity": fmt(a.cash) or "0",
        "last_equity": fmt(a.cash) or "0",
        "multiplier": "1",
        "trading_blocked": False,
        "account_blocked": False,
        "transfers_blocked": False,
    }


def parse_account(body: dict[str, Any]) -> BrokerAccount:
    return BrokerAccount(
        id=str(body["id"]),
        account_number=str(body.get("account_number") or ""),
        status=str(body.get("status") or ""),
        cash=_dec(body.get("cash")) or Decimal(0),
        buying_power=_dec(body.get("buying_power")) or Decimal(0),
    )


def journal_json(j: Journal) -> dict[str, Any]:
    return {
        "id": j.id,
        "entry_type": "JNLC",
        "from_account": j.from_account,
        "to_account": j.to_account,
        "symbol": None,
        "qty": None,
        "price": None,
        "status": j.status,
        "net_amount": fmt(j.amount),
        "amount": fmt(j.amount),
        "settle_date": None,
        "system_date": None,
        "description": j.description,
        "currency": "USD",
    }


def parse_journal(body: dict[str, Any]) -> Journal:
    return Journal(
        id=str(body["id"]),
        from_account=str(body.get("from_account") or ""),
        to_account=str(body.get("to_account") or ""),
        amount=_dec(body.get("net_amount") or body.get("amount")) or Decimal(0),
        status=str(body.get("status") or ""),
        description=str(body.get("description") or ""),
    )


def position_json(p: BrokerPosition) -> dict[str, Any]:
    unrealized = p.market_value - p.cost_basis
    return {
        "asset_id": asset_id(p.symbol),
        "symbol": p.symbol,
        "exchange": "CRYPTO" if p.asset_class == "crypto" else "NASDAQ",
        "asset_class": p.asset_class,
        "qty": fmt(p.qty),
        "qty_available": fmt(p.qty),
        "avg_entry_price": fmt(p.avg_entry_price),
        "side": "long",
        "market_value": fmt(p.market_value),
        "cost_basis": fmt(p.cost_basis),
        "unrealized_pl": fmt(unrealized),
        "unrealized_plpc": fmt(unrealized / p.cost_basis) if p.cost_basis else "0",
        "current_price": fmt(p.current_price),
        "lastday_price": fmt(p.current_price),
        "change_today": "0",
    }


def parse_position(body: dict[str, Any]) -> BrokerPosition:
    return BrokerPosition(
        symbol=str(body["symbol"]),
        asset_class=str(body.get("asset_class") or "us_equity"),
        qty=_dec(body.get("qty")) or Decimal(0),
        avg_entry_price=_dec(body.get("avg_entry_price")) or Decimal(0),
        cost_basis=_dec(body.get("cost_basis")) or Decimal(0),
        current_price=_dec(body.get("current_price")) or Decimal(0),
        market_value=_dec(body.get("market_value")) or Decimal(0),
    )


def asset_json(a: Asset) -> dict[str, Any]:
    return {
        "id": a.id,
        "class": a.asset_class,
        "exchange": a.exchange,
        "symbol": a.symbol,
        "name": a.name,
        "status": a.status,
        "tradable": a.tradable,
        "marginable": False,
        "shortable": False,
        "easy_to_borrow": False,
        "fractionable": a.fractionable,
        "attributes": ["fractional_eh_enabled"] if a.fractionable else [],
    }


def parse_asset(body: dict[str, Any]) -> Asset:
    return Asset(
        id=str(body.get("id") or asset_id(str(body["symbol"]))),
        symbol=str(body["symbol"]),
        name=str(body.get("name") or ""),
        asset_class=str(body.get("class") or body.get("asset_class") or "us_equity"),
        exchange=str(body.get("exchange") or ""),
        tradable=bool(body.get("tradable")),
        fractionable=bool(body.get("fractionable")),
        status=str(body.get("status") or "active"),
    )


def quote_json(q: Quote) -> dict[str, Any]:
    # Market data's latest quote: ap/as ask, bp/bs bid, t time
    return {
        "symbol": q.symbol,
        "quote": {
            "ap": fmt(q.ask),
            "as": fmt(q.ask_size),
            "bp": fmt(q.bid),
            "bs": fmt(q.bid_size),
            "t": ts(q.at),
        },
    }


def parse_quote(symbol: str, body: dict[str, Any], *, market_open: bool) -> Quote:
    quote = body.get("quote") or body
    return Quote(
        symbol=symbol,
        ask=_dec(quote.get("ap")) or Decimal(0),
        ask_size=_dec(quote.get("as")) or Decimal(0),
        bid=_dec(quote.get("bp")) or Decimal(0),
        bid_size=_dec(quote.get("bs")) or Decimal(0),
        at=parse_ts(quote.get("t") or dt.datetime.now(dt.UTC)),
        market_open=market_open,
    )


def snapshot_json(q: Quote, previous_close: Decimal, previous_at: dt.datetime) -> dict[str, Any]:
    """Market data's snapshot of one symbol: latestQuote and prevDailyBar (o/h/l/c, v volume,
    n trades, vw VWAP, t the bar's start), numbers as JSON numbers as Alpaca sends them."""
    close = float(previous_close)
    return {
        "latestQuote": {
            "ap": float(q.ask),
            "as": float(q.ask_size),
            "bp": float(q.bid),
            "bs": float(q.bid_size),
            "t": ts(q.at),
        },
        "prevDailyBar": {
            "t": ts(previous_at),
            "o": close,
            "h": close,
            "l": close,
            "c": close,
            "v": 0,
            "n": 0,
            "vw": close,
        },
    }


def parse_snapshot(symbol: str, body: dict[str, Any]) -> Snapshot:
    bar = body.get("prevDailyBar") or body.get("prev_daily_bar") or {}
    close = bar.get("c")
    at = bar.get("t")
    return Snapshot(
        symbol=symbol,
        previous_close=None if close is None else Decimal(str(close)),
        previous_close_at=None if at is None else parse_ts(at),
    )


def error_json(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}
