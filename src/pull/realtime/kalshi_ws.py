"""Kalshi's WebSocket API v2 at `/trade-api/ws/v2`.

The handshake is signed like a REST call (KALSHI-ACCESS-KEY, -TIMESTAMP in ms, -SIGNATURE:
RSA-PSS over timestamp + "GET" + "/trade-api/ws/v2"); an unsigned or badly signed handshake is
refused with 401 before the upgrade. Commands are `{id, cmd, params}`: subscribe, unsubscribe,
update_subscription (add_markets, delete_markets, get_snapshot), list_subscriptions; answers
and numeric error codes are Kalshi's (its AsyncAPI description).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import WebSocket
from starlette.responses import JSONResponse

from pull.identity import api_keys as identity_api_keys
from pull.identity import signing
from pull.kit.errors import AppError
from pull.realtime import metrics
from pull.realtime.connection import Connection, run_websocket
from pull.realtime.hub import Hub, UnknownMarket
from pull.realtime.kalshi_channels import (
    NOT_OFFERED,
    PRIVATE,
    PUBLIC,
    KalshiSub,
    LifecycleSub,
    OrderbookSub,
    TickerSub,
    TradeSub,
)
from pull.realtime.state import live

PATH = "/trade-api/ws/v2"
PROTOCOL = "kalshi"

ERRORS = {
    1: "Unable to process message",
    2: "Params required",
    3: "Channels required",
    4: "Subscription IDs required",
    5: "Unknown command",
    7: "Unknown subscription ID",
    8: "Unknown channel name",
    10: "Channel error",
    11: "Invalid parameter",
    12: "Exactly one subscription ID is required",
    13: "Unsupported action",
    14: "Market Ticker required",
    15: "Action required",
    16: "Market not found",
    17: "Internal error",
    25: "Subscription buffer overflow",
    26: "Subscription market limit exceeded",
    27: "Too many requests",
}


class CommandError(Exception):
    def __init__(self, code: int, msg: str | None = None, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.msg = msg or ERRORS[code]
        self.extra = extra


def error_frame(cid: Any, code: int, msg: str | None = None, **extra: Any) -> str:
    body: dict[str, Any] = {"type": "error", "msg": {"code": code, "msg": msg or ERRORS[code]}}
    if cid:
        body = {"id": cid, **body}
    body["msg"].update(extra)
    return orjson.dumps(body).decode()


class KalshiConnection(Connection):
    def overflow_message(self) -> str:
        return error_frame(None, 25)


def _tickers(params: dict[str, Any]) -> list[str] | None:
    one = params.get("market_ticker")
    many = params.get("market_tickers")
    if one is not None and many is not None:
        raise CommandError(11, "Use market_ticker or market_tickers, not both")
    if params.get("market_id") is not None or params.get("market_ids") is not None:
        raise CommandError(11, "PULL filters by market_ticker(s) only")
    if one is not None:
        if not isinstance(one, str) or not one:
            raise CommandError(11, "market_ticker must be a string")
        return [one]
    if many is not None:
        if not isinstance(many, list) or not all(isinstance(t, str) and t for t in many):
            raise CommandError(11, "market_tickers must be a list of strings")
        return list(dict.fromkeys(many))
    return None


class Session:
    """One Kalshi WebSocket session: its subscriptions by sid."""

    def __init__(self, hub: Hub, conn: KalshiConnection) -> None:
        self.hub = hub
        self.conn = conn

    def reply(self, body: dict[str, Any]) -> None:
        self.conn.send(orjson.dumps(body).decode())

    async def handle(self, text: str) -> None:
        cid: Any = 0
        try:
            try:
                command = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise CommandError(1) from None
            if not isinstance(command, dict):
                raise CommandError(1)
            cid = command.get("id") or 0
            if not self.conn.allow_command():
                raise CommandError(27)
            cmd = command.get("cmd")
            params = command.get("params")
            if cmd == "list_subscriptions":
                await self.list_subscriptions(cid)
                return
            if cmd not in ("subscribe", "unsubscribe", "update_subscription"):
                raise CommandError(5)
            if not isinstance(params, dict):
                raise CommandError(2)
            if cmd == "subscribe":
                await self.subscribe(cid, params)
            elif cmd == "unsubscribe":
                self.unsubscribe(cid, params)
            else:
                await self.update(cid, params)
        except CommandError as exc:
            self.conn.send(error_frame(cid, exc.code, exc.msg, **exc.extra))

    async def subscribe(self, cid: Any, params: dict[str, Any]) -> None:
        channels = params.get("channels")
        if not channels:
            raise CommandError(3)
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise CommandError(11, "channels must be a list of channel names")
        for ch in channels:
            if ch in NOT_OFFERED:
                raise CommandError(8, f"Unknown channel name: PULL does not offer {ch}")
            if ch not in PUBLIC and ch not in PRIVATE:
                raise CommandError(8)
        tickers = _tickers(params)
        if len(self.conn.subs) + len(channels) > self.conn.limits.max_subscriptions:
            raise CommandError(10, "Too many subscriptions on this connection")
        if tickers is not None and len(tickers) > self.conn.limits.max_markets:
            raise CommandError(26)
        for ch in channels:
            sub = self._make(ch, tickers, params)
            answer = {"id": cid, "type": "subscribed", "msg": {"channel": ch, "sid": sub.sid}}

            def announce(a: dict[str, Any] = answer) -> None:
                self.reply(a)

            try:
                await self.hub.watch(sub, None if sub.private else sub.tickers, announce)
            except UnknownMarket as exc:
                if sub.sid == self.conn.next_sid - 1:
                    self.conn.next_sid -= 1  # a refused subscribe takes no sid
                raise CommandError(16, market_ticker=exc.ticker) from None
            self.conn.subs[sub.sid] = sub
            metrics.SUBSCRIPTIONS.labels(PROTOCOL).inc()

    def _make(self, ch: str, tickers: list[str] | None, params: dict[str, Any]) -> KalshiSub:
        wanted = set(tickers) if tickers is not None else None
        if ch == "orderbook_delta" and wanted is None:
            raise CommandError(14)
        if ch == "market_lifecycle_v2" and wanted is not None:
            wanted = None  # Kalshi: no market filter on this channel
        sid = self.conn.take_sid()
        if ch == "orderbook_delta":
            return OrderbookSub(self.conn, wanted, sid)
        if ch == "ticker":
            return TickerSub(self.conn, wanted, sid, bool(params.get("send_initial_snapshot")))
        if ch == "trade":
            return TradeSub(self.conn, wanted, sid)
        if ch == "market_lifecycle_v2":
            return LifecycleSub(self.conn, None, sid)
        return PRIVATE[ch](self.conn, wanted, sid)

    def unsubscribe(self, cid: Any, params: dict[str, Any]) -> None:
        sids = params.get("sids")
        if not sids:
            raise CommandError(4)
        if not isinstance(sids, list) or not all(isinstance(s, int) for s in sids):
            raise CommandError(11, "sids must be a list of integers")
        for sid in sids:
            sub = self.conn.subs.pop(sid, None)
            if sub is None:
                self.conn.send(error_frame(cid, 7))
                continue
            self.hub.unwatch(sub, None if sub.tickers is None else list(sub.tickers))
            metrics.SUBSCRIPTIONS.labels(PROTOCOL).dec()
            self.reply({"id": cid, "sid": sid, "seq": sub.seq, "type": "unsubscribed"})

    async def update(self, cid: Any, params: dict[str, Any]) -> None:
        sids = params.get("sids")
        sid = params.get("sid")
        if sid is None and isinstance(sids, list) and len(sids) == 1:
            sid = sids[0]
        elif sid is not None and sids is not None:
            raise CommandError(12)
        if not isinstance(sid, int):
            raise CommandError(12)
        action = params.get("action")
        if not action:
            raise CommandError(15)
        if action not in ("add_markets", "delete_markets", "get_snapshot"):
            raise CommandError(13)
        sub = self.conn.subs.get(sid)
        if sub is None:
            raise CommandError(7)
        tickers = _tickers(params)
        if not tickers:
            raise CommandError(14)
        if sub.tickers is None:
            raise CommandError(13, "This subscription is for every market")
        if action == "get_snapshot":
            if not isinstance(sub, OrderbookSub):
                raise CommandError(13, "get_snapshot is for orderbook_delta subscriptions")
            for t in tickers:
                feed = self.hub.feed(t)
                if t not in sub.tickers or feed is None:
                    raise CommandError(16, market_ticker=t)
                self.hub.snapshot(sub, feed)
            return
        if action == "add_markets":
            new = [t for t in tickers if t not in sub.tickers]
            if len(sub.tickers) + len(new) > self.conn.limits.max_markets:
                raise CommandError(26)
            if not sub.private:
                try:
                    await self.hub.watch(sub, new)
                except UnknownMarket as exc:
                    raise CommandError(16, market_ticker=exc.ticker) from None
            sub.tickers.update(new)
        else:
            gone = [t for t in tickers if t in sub.tickers]
            sub.tickers.difference_update(gone)
            if not sub.private:
                self.hub.unwatch(sub, gone)
        self.reply(
            {
                "id": cid,
                "sid": sid,
                "seq": sub.seq,
                "type": "ok",
                "msg": {"market_tickers": sorted(sub.tickers)},
            }
        )

    async def list_subscriptions(self, cid: Any) -> None:
        self.reply(
            {
                "id": cid,
                "type": "ok",
                "msg": [{"channel": s.channel, "sid": sid} for sid, s in self.conn.subs.items()],
            }
        )

    def close(self) -> None:
        for sub in self.conn.subs.values():
            self.hub.unwatch(sub, None if sub.tickers is None else list(sub.tickers))
            metrics.SUBSCRIPTIONS.labels(PROTOCOL).dec()
        self.conn.subs.clear()


def _denied(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def kalshi_ws(websocket: WebSocket) -> None:
    state = live(websocket.app)
    key_id = websocket.headers.get(signing.HEADER_KEY)
    timestamp = websocket.headers.get(signing.HEADER_TIMESTAMP)
    signature = websocket.headers.get(signing.HEADER_SIGNATURE)
    if not key_id or not timestamp or not signature:
        await websocket.send_denial_response(
            _denied(401, "UNAUTHORIZED", "Signed handshake required: KALSHI-ACCESS-* headers")
        )
        return
    try:
        async with websocket.app.state.sessionmaker() as session:
            user = await identity_api_keys.authenticate_signed(
                session=session,
                key_id=key_id,
                timestamp=timestamp,
                signature=signature,
                method="GET",
                path=PATH,
            )
            await session.commit()
    except AppError as exc:  # bad or stale signature, unknown key, disabled account
        await websocket.send_denial_response(_denied(exc.status_code, exc.code, exc.message))
        return
    conn = KalshiConnection(protocol=PROTOCOL, user_id=str(user.id), limits=state.limits)
    if not state.admit(conn):
        await websocket.send_denial_response(
            _denied(503, "SERVICE_OVERLOADED", "Too many connections on this server")
        )
        metrics.DROPS.labels(PROTOCOL, "capacity").inc()
        return
    session_ = Session(state.hub, conn)
    try:
        await websocket.accept()
        conn.attach(websocket)
        await run_websocket(websocket, conn, session_.handle, session_.close)
    finally:
        state.release(conn)
