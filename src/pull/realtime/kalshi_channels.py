"""Kalshi WebSocket v2 channels: how hub events become Kalshi's messages (current shapes:
dollar strings with 4 decimals, `_fp` counts with 2; see docs/kalshi-compatibility.md)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import orjson

from pull.exchange.kalshi.units import dollars, fp
from pull.realtime.hub import Feed, Shared, Subscription, pack


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


def _orderbook_msgs(feed: Feed, events: list[dict[str, Any]]) -> list[tuple[bytes, str, bytes]]:
    """This tick's `orderbook_delta` bodies, one per level change in seq order: (body, the
    user whose order caused it or "", the body with that order's client_order_id)."""
    out: list[tuple[bytes, str, bytes]] = []
    for event in events:
        by = event.get("by") or {}
        who = str(by.get("user_id") or "") if by.get("client_order_id") else ""
        ts_ms = int(event["ts"])
        ts = _iso(ts_ms)
        for change in event["changes"]:
            msg: dict[str, Any] = {
                "market_ticker": feed.ticker,
                "market_id": feed.market_id,
                "price_dollars": dollars(int(change["price"])),
                "delta_fp": fp(int(change["delta"])),
                "side": change["side"],
                "ts": ts,
                "ts_ms": ts_ms,
            }
            body = orjson.dumps(msg)
            mine = body
            if who:
                msg["client_order_id"] = by["client_order_id"]
                mine = orjson.dumps(msg)
            out.append((body, who, mine))
    return out


def kalshi_bytes(kind: bytes, sid: int, msg: bytes, seq: int | None = None) -> bytes:
    """A server message from an encoded `msg` (same layout as `frame`)."""
    if seq is None:
        return b'{"type":"%b","sid":%d,"msg":%b}' % (kind, sid, msg)
    return b'{"type":"%b","sid":%d,"seq":%d,"msg":%b}' % (kind, sid, seq, msg)


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

    def on_batch(self, feed: Feed | None, events: list[dict[str, Any]], shared: Shared) -> None:
        """One message per level change, seq per sid. Subscriptions with the same sid and seq
        (the usual case: clients that subscribed alike) get the very same bytes, encoded once;
        a client whose own order caused a change gets its client_order_id in it."""
        if feed is None:
            return
        msgs = shared.get("ob")
        if msgs is None:
            msgs = shared["ob"] = _orderbook_msgs(feed, events)
            shared["ob_users"] = {who for _, who, _ in msgs if who}
        if not msgs:
            return
        conn = self.conn
        me = conn.user_id if conn.user_id in shared["ob_users"] else ""
        key = ("ob", conn.wire, self.sid, self.seq, me)
        payload = shared.get(key)
        if payload is None:
            sid, seq = self.sid, self.seq
            items = [
                (
                    "orderbook_delta",
                    kalshi_bytes(
                        b"orderbook_delta", sid, mine if me and who == me else body, seq + i
                    ),
                )
                for i, (body, who, mine) in enumerate(msgs, 1)
            ]
            payload = shared[key] = pack(conn.wire, items)
        self.seq += len(msgs)
        conn.deliver(payload, len(msgs))


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


def _last_tickers(
    events: list[dict[str, Any]], shared: Shared
) -> dict[str, tuple[tuple[Any, ...], bytes]]:
    """Per market in this tick: its last ticker fields and their encoded `ticker` body."""
    found: dict[str, tuple[tuple[Any, ...], bytes]] | None = shared.get("tickers")
    if found is None:
        last: dict[str, dict[str, Any]] = {}
        for event in events:
            last[event["ticker"]] = event
        found = {}
        for ticker, event in last.items():
            m = event.get("market") or {}
            body = orjson.dumps(ticker_msg(ticker, event.get("market_id", ""), m, int(event["ts"])))
            found[ticker] = (tuple(m.get(f) for f in _TICKER_FIELDS), body)
        shared["tickers"] = found
    return found


class TickerSub(KalshiSub):
    channel = "ticker"

    def __init__(self, conn: Any, tickers: set[str] | None, sid: int, snapshot: bool) -> None:
        super().__init__(conn, tickers, sid)
        self.snapshot = snapshot
        self.sent: dict[str, tuple[Any, ...]] = {}

    def on_snapshot(self, feed: Feed) -> None:
        if not self.snapshot:
            return
        m = feed.market
        fields = tuple(m.get(f) for f in _TICKER_FIELDS)
        if self.sent.get(feed.ticker) == fields:
            return
        self.sent[feed.ticker] = fields
        now = int(time.time() * 1000)
        self.emit("ticker", ticker_msg(feed.ticker, feed.market_id, m, now))

    def on_batch(self, feed: Feed | None, events: list[dict[str, Any]], shared: Shared) -> None:
        """A `ticker` message for each market whose ticker fields changed this tick (Kalshi
        sends one when a ticker field changes), from the tick's last state."""
        found = _last_tickers(events, shared)
        names = [
            t for t, (fields, _) in found.items() if self.sent.get(t) != fields and self.wants(t)
        ]
        if not names:
            return
        conn = self.conn
        key = ("ticker", conn.wire, self.sid, *names)
        payload = shared.get(key)
        if payload is None:
            items = [("ticker", kalshi_bytes(b"ticker", self.sid, found[t][1])) for t in names]
            payload = shared[key] = pack(conn.wire, items)
        for t in names:
            self.sent[t] = found[t][0]
        conn.deliver(payload, len(names))


class TradeSub(KalshiSub):
    channel = "trade"

    def on_batch(self, feed: Feed | None, events: list[dict[str, Any]], shared: Shared) -> None:
        bodies: list[tuple[str, bytes]] | None = shared.get("trades")
        if bodies is None:
            bodies = shared["trades"] = [
                (event["ticker"], orjson.dumps(_trade_msg(event["ticker"], t)))
                for event in events
                for t in event.get("trades") or ()
            ]
        if not bodies:
            return
        # a feed's batch is of one market the subscription wants; otherwise the subscription
        # is for every market: either way it sends them all
        conn = self.conn
        key = ("trade", conn.wire, self.sid)
        payload = shared.get(key)
        if payload is None:
            items = [("trade", kalshi_bytes(b"trade", self.sid, body)) for _, body in bodies]
            payload = shared[key] = pack(conn.wire, items)
        conn.deliver(payload, len(bodies))


def _trade_msg(ticker: str, t: dict[str, Any]) -> dict[str, Any]:
    ts_ms = _ms(t.get("created_time"))
    return {
        "trade_id": str(t["trade_id"]),
        "market_ticker": ticker,
        "yes_price_dollars": dollars(int(t["yes_price"])),
        "no_price_dollars": dollars(100 - int(t["yes_price"])),
        "count_fp": fp(int(t["count"])),
        "taker_side": t["taker_side"],
        "ts": ts_ms // 1000,
        "ts_ms": ts_ms,
    }


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
        if event.get("kind") == "event_lifecycle":
            self.emit(
                "event_lifecycle",
                {
                    "event_ticker": event["event_ticker"],
                    "title": event.get("title") or "",
                    "subtitle": event.get("subtitle") or "",
                    "collateral_return_type": "",
                    "series_ticker": event.get("series_ticker") or "",
                },
            )
            return
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
