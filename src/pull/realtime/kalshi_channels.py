"""Kalshi WebSocket v2 channels: how hub events become Kalshi's messages (current shapes:
dollar strings with 4 decimals, `_fp` counts with 2; see docs/kalshi-compatibility.md)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import orjson

from pull.exchange.kalshi.units import dollars, fp
from pull.realtime.hub import Feed, Subscription


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value:
        return int(dt.datetime.fromisoformat(value).timestamp() * 1000)
    return int(time.time() * 1000)


def frame(kind: str, sid: int, msg: Any, seq: int | None = None) -> str:
    body: dict[str, Any] = {"type": kind, "sid": sid}
    if seq is not None:
        body["seq"] = seq
    body["msg"] = msg
    return orjson.dumps(body).decode()


class KalshiSub(Subscription):
    def __init__(self, conn: Any, tickers: set[str] | None, sid: int) -> None:
        super().__init__(conn, tickers)
        self.sid = sid
        self.seq = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def emit(self, kind: str, msg: Any, *, with_seq: bool = False) -> None:
        self.conn.send(frame(kind, self.sid, msg, self.next_seq() if with_seq else None))


class OrderbookSub(KalshiSub):
    channel = "orderbook_delta"
    needs_feed = True

    def on_snapshot(self, feed: Feed) -> None:
        msg: dict[str, Any] = {"market_ticker": feed.ticker, "market_id": feed.market_id}
        if feed.yes:
            msg["yes_dollars_fp"] = [[dollars(p), fp(c)] for p, c in sorted(feed.yes.items())]
        if feed.no:
            msg["no_dollars_fp"] = [[dollars(p), fp(c)] for p, c in sorted(feed.no.items())]
        self.emit("orderbook_snapshot", msg, with_seq=True)

    def on_book(self, feed: Feed | None, event: dict[str, Any]) -> None:
        if feed is None:
            return
        by = event.get("by") or {}
        mine = by.get("user_id") == self.conn.user_id and by.get("client_order_id")
        ts_ms = int(event["ts"])
        for change in event["changes"]:
            msg: dict[str, Any] = {
                "market_ticker": feed.ticker,
                "market_id": feed.market_id,
                "price_dollars": dollars(int(change["price"])),
                "delta_fp": fp(int(change["delta"])),
                "side": change["side"],
                "ts": _iso(ts_ms),
                "ts_ms": ts_ms,
            }
            if mine:
                msg["client_order_id"] = by["client_order_id"]
            self.emit("orderbook_delta", msg, with_seq=True)


def ticker_msg(ticker: str, market_id: str, m: dict[str, Any], ts_ms: int) -> dict[str, Any]:
    last = m.get("last_price")
    volume = int(m.get("volume") or 0)
    oi = int(m.get("open_interest") or 0)
    yes_bid = m.get("yes_bid")
    yes_ask = m.get("yes_ask")
    return {
        "market_ticker": ticker,
        "market_id": market_id,
        "price_dollars": dollars(int(last or 0)),
        "yes_bid_dollars": dollars(int(yes_bid or 0)),
        "yes_ask_dollars": dollars(int(100 if yes_ask is None else yes_ask)),
        "volume_fp": fp(volume),
        "open_interest_fp": fp(oi),
        # whole dollars traded / held: a contract pays $1
        "dollar_volume": volume,
        "dollar_open_interest": oi,
        "ts": ts_ms // 1000,
        "ts_ms": ts_ms,
        "time": _iso(ts_ms),
    }


_TICKER_FIELDS = ("last_price", "yes_bid", "yes_ask", "volume", "open_interest")


class TickerSub(KalshiSub):
    channel = "ticker"

    def __init__(self, conn: Any, tickers: set[str] | None, sid: int, snapshot: bool) -> None:
        super().__init__(conn, tickers, sid)
        self.snapshot = snapshot
        self.sent: dict[str, tuple[Any, ...]] = {}

    def on_snapshot(self, feed: Feed) -> None:
        if self.snapshot:
            self._send(feed.ticker, feed.market_id, feed.market, int(time.time() * 1000))

    def on_book(self, feed: Feed | None, event: dict[str, Any]) -> None:
        m = event.get("market") or {}
        self._send(event["ticker"], event.get("market_id", ""), m, int(event["ts"]))

    def _send(self, ticker: str, market_id: str, m: dict[str, Any], ts_ms: int) -> None:
        key = tuple(m.get(f) for f in _TICKER_FIELDS)
        if self.sent.get(ticker) == key:
            return  # Kalshi sends a ticker message when a ticker field changes
        self.sent[ticker] = key
        self.emit("ticker", ticker_msg(ticker, market_id, m, ts_ms))


class TradeSub(KalshiSub):
    channel = "trade"

    def on_book(self, feed: Feed | None, event: dict[str, Any]) -> None:
        for t in event.get("trades") or ():
            ts_ms = _ms(t.get("created_time"))
            self.emit(
                "trade",
                {
                    "trade_id": str(t["trade_id"]),
                    "market_ticker": event["ticker"],
                    "yes_price_dollars": dollars(int(t["yes_price"])),
                    "no_price_dollars": dollars(100 - int(t["yes_price"])),
                    "count_fp": fp(int(t["count"])),
                    "taker_side": t["taker_side"],
                    "ts": ts_ms // 1000,
                    "ts_ms": ts_ms,
                },
            )


# exchange.market status -> Kalshi lifecycle event_type
LIFECYCLE = {
    "initialized": "created",
    "open": "activated",
    "paused": "deactivated",
    "closed": "deactivated",
    "settled": "settled",
}


class LifecycleSub(KalshiSub):
    channel = "market_lifecycle_v2"

    def on_lifecycle(self, event: dict[str, Any]) -> None:
        status = str(event.get("status") or "")
        kind = LIFECYCLE.get(status)
        result = event.get("result")
        if result and status != "settled":
            kind = "determined"
        if kind is None:
            return
        msg: dict[str, Any] = {"market_ticker": event["ticker"], "event_type": kind}
        now = int(time.time())
        if kind == "deactivated":
            msg["is_deactivated"] = True
        elif kind == "activated":
            msg["is_deactivated"] = False
        elif kind == "determined":
            msg["result"] = result
            msg["determination_ts"] = now
        elif kind == "settled":
            msg["result"] = result or ""
            msg["settled_ts"] = now
        self.emit("market_lifecycle_v2", msg)


class PrivateSub(KalshiSub):
    private = True

    def on_user(self, event: dict[str, Any]) -> None:
        if event.get("type") != "exchange.order":
            return
        data = event["data"]
        if self.wants(data["ticker"]):
            self.deliver(data)

    def deliver(self, data: dict[str, Any]) -> None:
        raise NotImplementedError


class FillSub(PrivateSub):
    channel = "fill"

    def deliver(self, data: dict[str, Any]) -> None:
        order = data["order"]
        position = data.get("position") or {}
        for f in data.get("fills") or ():
            ts_ms = _ms(f.get("created_at"))
            pos = int(position.get("position") or 0)
            self.emit(
                "fill",
                {
                    "trade_id": str(f["trade_id"]),
                    "order_id": str(f["order_id"]),
                    "market_ticker": data["ticker"],
                    "is_taker": bool(f["is_taker"]),
                    "side": f["side"],
                    "yes_price_dollars": dollars(int(f["yes_price"])),
                    "count_fp": fp(int(f["count"])),
                    "action": f["action"],
                    "ts": ts_ms // 1000,
                    "ts_ms": ts_ms,
                    "post_position_fp": fp(pos),
                    "purchased_side": f["side"] if f["action"] == "buy" else _other(f["side"]),
                    "client_order_id": order.get("client_order_id"),
                },
            )


def _other(side: str) -> str:
    return "no" if side == "yes" else "yes"


class UserOrderSub(PrivateSub):
    channel = "user_orders"

    def deliver(self, data: dict[str, Any]) -> None:
        o = data["order"]
        created = _ms(o.get("created_time"))
        msg: dict[str, Any] = {
            "order_id": o["order_id"],
            "user_id": o["user_id"],
            "ticker": o["ticker"],
            "status": o["status"],
            "side": o["side"],
            "is_yes": o["side"] == "yes",
            "action": o["action"],
            "yes_price_dollars": dollars(int(o["yes_price"])),
            "fill_count_fp": fp(int(o["fill_count"])),
            "remaining_count_fp": fp(int(o["remaining_count"])),
            "initial_count_fp": fp(int(o["initial_count"])),
            "taker_fill_cost_dollars": dollars(int(o["taker_fill_cost"])),
            "maker_fill_cost_dollars": dollars(int(o["maker_fill_cost"])),
            "taker_fees_dollars": dollars(int(o["taker_fees"])),
            "maker_fees_dollars": dollars(int(o["maker_fees"])),
            "client_order_id": o.get("client_order_id") or "",
            "self_trade_prevention_type": o.get("self_trade_prevention_type"),
            "created_time": _iso(created),
            "created_ts_ms": created,
            "last_update_time": _iso(_ms(o.get("last_update_time"))),
            "subaccount_number": 0,
        }
        if o.get("expiration_time"):
            exp = _ms(o["expiration_time"])
            msg["expiration_time"] = _iso(exp)
            msg["expiration_ts_ms"] = exp
        self.emit("user_order", msg)


class PositionSub(PrivateSub):
    channel = "market_positions"

    def deliver(self, data: dict[str, Any]) -> None:
        p = data.get("position")
        if not p:
            return
        self.emit(
            "market_position",
            {
                "user_id": data["user_id"],
                "market_ticker": data["ticker"],
                "position_fp": fp(int(p["position"])),
                "position_cost_dollars": dollars(int(p["cost_basis"])),
                "realized_pnl_dollars": dollars(int(p["realized_pnl"])),
                "fees_paid_dollars": dollars(int(p["fees_paid"])),
                "volume_fp": fp(int(p["volume"])),
            },
        )


PUBLIC = {"orderbook_delta", "ticker", "trade", "market_lifecycle_v2"}
PRIVATE: dict[str, type[PrivateSub]] = {
    "fill": FillSub,
    "user_orders": UserOrderSub,
    "market_positions": PositionSub,
}
# Kalshi channels PULL has no data for: the subscribe is refused with code 8 and says why.
NOT_OFFERED = {
    "ticker_v2",
    "multivariate",
    "multivariate_market_lifecycle",
    "communications",
    "order_group_updates",
    "cfbenchmarks_value",
    "pyth_value",
}
