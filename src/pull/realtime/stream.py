"""The app's live stream, `GET /api/v1/stream`: a WebSocket, or Server-Sent Events for browsers.

Authentication is the app's bearer access token (`Authorization: Bearer ...`, or the
`access_token` query parameter where a browser cannot set headers: EventSource, WebSocket).
A connection always receives its own user's events (orders, fills, positions, deposits and
withdrawals, KYC decisions, and whatever other modules push with `publish_user_event`) and may
add public market channels: `?markets=A,B` on connect, or over the WebSocket
`{"op": "subscribe", "channel": "market", "ticker": "A"}` / `"op": "unsubscribe"`. Naming any
user channel but one's own (`"channel": "user:<id>"`) is refused: a user only ever gets their
own events. Messages are `{"type", "data"}` (plus `ticker`/`seq` on market messages) in the app
API's own JSON shapes; see docs/realtime.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from pull.identity import auth as identity_auth
from pull.identity.schemas import AuthUser
from pull.kit.errors import ServiceUnavailable, Unauthorized
from pull.kit.tokens import InvalidToken, decode_access_token
from pull.realtime import metrics
from pull.realtime.connection import Connection, run_websocket
from pull.realtime.hub import Feed, Hub, Shared, Subscription, UnknownMarket, pack
from pull.realtime.state import live

PATH = "/api/v1/stream"
HEARTBEAT_SECONDS = 15.0

router = APIRouter(tags=["stream"])


class AppConnection(Connection):
    def __init__(self, *, sse: bool, **kw: Any) -> None:
        super().__init__(**kw)
        self.sse = sse
        if sse:
            self.wire = "sse"

    def emit(self, kind: str, body: dict[str, Any]) -> None:
        self.send(self.encode(kind, body))

    def encode(self, kind: str, body: dict[str, Any]) -> str:
        text = orjson.dumps({"type": kind, **body}).decode()
        return f"event: {kind}\ndata: {text}\n\n" if self.sse else text

    def overflow_message(self) -> str:
        return self.encode(
            "error",
            {"data": {"code": "SLOW_CONSUMER", "message": "Not reading fast enough; closing"}},
        )

    def idle_message(self) -> str:
        return self.encode("error", {"data": {"code": "IDLE", "message": "Idle; closing"}})


def app_batch(ticker: str, events: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """One tick of a market's book events as the app stream's messages."""
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    trades: list[dict[str, Any]] = []
    for event in events:
        for c in event["changes"]:
            level = merged.get((c["side"], c["price"]))
            if level is None:
                merged[(c["side"], c["price"])] = dict(c)
            else:
                level["delta"] += c["delta"]
                level["count"] = c["count"]
        for t in event.get("trades") or ():
            trades.append(
                {
                    "trade_id": t["trade_id"],
                    "ticker": ticker,
                    "count": t["count"],
                    "yes_price": t["yes_price"],
                    "no_price": 100 - int(t["yes_price"]),
                    "taker_side": t["taker_side"],
                    "created_time": t["created_time"],
                }
            )
    changes = [
        merged[k] for k in sorted(merged, key=lambda k: (k[0] != "yes", k[1])) if merged[k]["delta"]
    ]
    first, last = events[0], events[-1]
    items = [
        (
            "book_delta",
            orjson.dumps(
                {
                    "type": "book_delta",
                    "ticker": ticker,
                    "seq": int(last["seq"]),
                    "from_seq": int(first["seq"]),
                    "ts": min(int(e["ts"]) for e in events),
                    "data": changes,
                }
            ),
        )
    ]
    if trades:
        items.append(("trades", orjson.dumps({"type": "trades", "ticker": ticker, "data": trades})))
    items.append(
        (
            "market",
            orjson.dumps(
                {
                    "type": "market",
                    "ticker": ticker,
                    "seq": int(last["seq"]),
                    "data": last.get("market") or {},
                }
            ),
        )
    )
    return items


class UserSub(Subscription):
    """The caller's own events, in the app API's shapes."""

    channel = "user"
    private = True

    def on_user(self, event: dict[str, Any]) -> None:
        conn: AppConnection = self.conn
        kind = str(event.get("type", ""))
        data = event.get("data") or {}
        if kind != "exchange.order":
            conn.emit(kind, {"data": data})
            return
        conn.emit("order", {"data": data["order"]})
        for f in data.get("fills") or ():
            conn.emit(
                "fill",
                {
                    "data": {
                        "fill_id": f["id"],
                        "trade_id": f["trade_id"],
                        "order_id": str(f["order_id"]),
                        "ticker": data["ticker"],
                        "side": f["side"],
                        "action": f["action"],
                        "count": f["count"],
                        "yes_price": f["yes_price"],
                        "no_price": 100 - int(f["yes_price"]),
                        "is_taker": f["is_taker"],
                        "fee": f["fee"],
                        "created_time": f["created_at"],
                    }
                },
            )
        p = data.get("position")
        if p and data.get("fills"):
            conn.emit(
                "position",
                {
                    "data": {
                        "ticker": data["ticker"],
                        "position": p["position"],
                        "cost_basis": p["cost_basis"],
                        "realized_pnl": p["realized_pnl"],
                        "fees_paid": p["fees_paid"],
                        "total_traded": p["volume"],
                    }
                },
            )


class MarketSub(Subscription):
    """A market's book (snapshot, then deltas by seq), trades and top of book."""

    channel = "market"
    needs_feed = True

    def on_snapshot(self, feed: Feed) -> None:
        conn: AppConnection = self.conn
        conn.emit(
            "book",
            {
                "ticker": feed.ticker,
                "seq": feed.seq,
                "data": {
                    "ticker": feed.ticker,
                    "yes": [[p, c] for p, c in sorted(feed.yes.items(), reverse=True)],
                    "no": [[p, c] for p, c in sorted(feed.no.items(), reverse=True)],
                },
            },
        )

    def on_batch(self, feed: Feed | None, events: list[dict[str, Any]], shared: Shared) -> None:
        """Per tick at most three messages, the same for every subscriber (encoded once):
        `book_delta` covering seq `from_seq`..`seq` (levels merged: summed delta, last count),
        `trades` (the tick's trades) and `market` (the last top of book)."""
        if feed is None:
            return
        conn: AppConnection = self.conn
        key = ("app", conn.wire)
        payload = shared.get(key)
        if payload is None:
            items = shared.get("app") or app_batch(feed.ticker, events)
            shared["app"] = items
            payload = shared[key] = pack(conn.wire, items)
        conn.deliver(payload, len(shared["app"]))

    def on_lifecycle(self, event: dict[str, Any]) -> None:
        conn: AppConnection = self.conn
        conn.emit(
            "market_status",
            {
                "ticker": event["ticker"],
                "data": {"status": event.get("status"), "result": event.get("result")},
            },
        )


async def _user(app: Any, token: str | None) -> AuthUser:
    if not token:
        raise Unauthorized(headers={"WWW-Authenticate": "Bearer"})
    try:
        claims = decode_access_token(app.state.settings, token)
    except InvalidToken:
        raise Unauthorized("Invalid or expired access token", code="INVALID_TOKEN") from None
    async with app.state.sessionmaker() as session:
        user = await identity_auth.authenticate_access(session=session, claims=claims)
        await session.commit()
    if user is None:
        raise Unauthorized("Session has ended", code="INVALID_TOKEN")
    return user


def _token(headers: Any, query: Any) -> str | None:
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return str(auth[7:].strip())
    token = query.get("access_token")
    return str(token) if token else None


def _markets(raw: str | None) -> list[str]:
    return [t for t in (raw or "").split(",") if t][:256]


class Stream:
    """The subscriptions of one app stream connection."""

    def __init__(self, hub: Hub, conn: AppConnection) -> None:
        self.hub = hub
        self.conn = conn
        self.markets: dict[str, MarketSub] = {}

    async def open(self, markets: list[str]) -> None:
        sub = UserSub(self.conn, None)
        await self.hub.watch(sub, None)
        self.conn.subs[0] = sub
        metrics.SUBSCRIPTIONS.labels("app").inc()
        self.conn.emit("hello", {"data": {"user_id": self.conn.user_id, "channels": ["user"]}})
        for ticker in markets:
            await self.add(ticker)

    async def add(self, ticker: str) -> None:
        if ticker in self.markets:
            return
        if len(self.conn.subs) >= self.conn.limits.max_subscriptions:
            self._error("TOO_MANY_SUBSCRIPTIONS", "Subscription limit reached")
            return
        sub = MarketSub(self.conn, {ticker})
        try:
            await self.hub.watch(
                sub,
                [ticker],
                lambda: self.conn.emit("subscribed", {"data": {"channel": f"market:{ticker}"}}),
            )
        except UnknownMarket:
            self._error("MARKET_NOT_FOUND", f"Unknown market {ticker}")
            return
        self.markets[ticker] = sub
        self.conn.subs[self.conn.take_sid()] = sub
        metrics.SUBSCRIPTIONS.labels("app").inc()

    def remove(self, ticker: str) -> None:
        sub = self.markets.pop(ticker, None)
        if sub is None:
            return
        self.hub.unwatch(sub, [ticker])
        for sid, s in list(self.conn.subs.items()):
            if s is sub:
                del self.conn.subs[sid]
        metrics.SUBSCRIPTIONS.labels("app").dec()
        self.conn.emit("unsubscribed", {"data": {"channel": f"market:{ticker}"}})

    def _error(self, code: str, message: str) -> None:
        self.conn.emit("error", {"data": {"code": code, "message": message}})

    async def handle(self, text: str) -> None:
        if not self.conn.allow_command():
            self._error("RATE_LIMITED", "Too many commands")
            return
        try:
            command = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._error("INVALID_MESSAGE", "Messages are JSON objects")
            return
        if not isinstance(command, dict):
            self._error("INVALID_MESSAGE", "Messages are JSON objects")
            return
        op, channel = command.get("op"), str(command.get("channel") or "")
        if op not in ("subscribe", "unsubscribe"):
            self._error("UNKNOWN_OP", "op is subscribe or unsubscribe")
            return
        if channel == "user" or channel.startswith("user:"):
            if channel not in ("user", f"user:{self.conn.user_id}"):
                self._error("FORBIDDEN", "A user channel is only its owner's")
            return  # one's own user channel is always on
        ticker = command.get("ticker")
        if channel != "market" or not isinstance(ticker, str) or not ticker:
            self._error("INVALID_CHANNEL", 'channel is "market" with a "ticker"')
            return
        if op == "subscribe":
            await self.add(ticker)
        else:
            self.remove(ticker)

    def close(self) -> None:
        for sub in self.conn.subs.values():
            self.hub.unwatch(sub, None if sub.tickers is None else list(sub.tickers))
            metrics.SUBSCRIPTIONS.labels("app").dec()
        self.conn.subs.clear()
        self.markets.clear()


async def stream_ws(websocket: WebSocket) -> None:
    state = live(websocket.app)
    try:
        user = await _user(websocket.app, _token(websocket.headers, websocket.query_params))
    except Unauthorized as exc:
        await websocket.send_denial_response(
            JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=401)
        )
        return
    conn = AppConnection(sse=False, protocol="app", user_id=str(user.id), limits=state.limits)
    if not state.admit(conn):
        await websocket.close(1013)
        metrics.DROPS.labels("app", "capacity").inc()
        return
    stream = Stream(state.hub, conn)
    try:
        await websocket.accept()
        conn.attach(websocket)
        await stream.open(_markets(websocket.query_params.get("markets")))
        await run_websocket(websocket, conn, stream.handle, stream.close)
    finally:
        state.release(conn)


@router.get(
    PATH,
    summary="Live stream of the caller's events and market channels (Server-Sent Events)",
    description=(
        "Server-Sent Events (`text/event-stream`); the same path upgrades to a WebSocket. "
        "Bearer token in `Authorization` or `access_token`. `markets`: comma-separated "
        "tickers to follow. Events: hello, order, fill, position, funding.*, kyc.*, book, "
        "book_delta, trades, market, market_status, error."
    ),
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_sse(
    request: Request,
    markets: str | None = Query(None, description="Comma-separated market tickers"),
    access_token: str | None = Query(None, description="For EventSource, which sends no headers"),
) -> StreamingResponse:
    state = live(request.app)
    user = await _user(request.app, _token(request.headers, request.query_params))
    conn = AppConnection(sse=True, protocol="app", user_id=str(user.id), limits=state.limits)
    if not state.admit(conn):
        raise ServiceUnavailable("Too many connections on this server", code="SERVICE_OVERLOADED")
    stream = Stream(state.hub, conn)
    try:
        await stream.open(_markets(markets))
    except BaseException:
        state.release(conn)
        raise

    async def events() -> AsyncIterator[str]:
        metrics.CONNECTIONS.labels("app").inc()
        try:
            while True:
                try:
                    await asyncio.wait_for(conn.wake.wait(), timeout=HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                conn.wake.clear()
                while conn.queue:
                    text, n = conn.take()
                    assert isinstance(text, str)
                    yield text
                    conn.out.inc(n)
                if conn.closing is not None:
                    return
        finally:
            stream.close()
            state.release(conn)
            metrics.CONNECTIONS.labels("app").dec()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
