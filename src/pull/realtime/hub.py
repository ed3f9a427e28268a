"""The API process's realtime hub: tails the Redis streams and fans events out to this
process's WebSocket/SSE connections.

- One reader task per process reads both streams (`XREAD BLOCK`) from the last entry id it
  has seen; after a Redis error it reconnects and resumes from that id, so nothing published
  while it was away is skipped (up to the streams' MAXLEN).
- A market with at least one subscriber here is a `Feed`: its book as of `seq`, loaded from
  the published state in PostgreSQL, then advanced by the market stream's book events strictly
  in `seq` order (early events wait; duplicates are dropped). A gap that does not fill within
  STREAM_GAP_SECONDS (a publish lost with Redis down, or a trimmed stream) reloads the book
  from PostgreSQL and sends subscribers a fresh snapshot.
- User events go to the subscriptions of that user's connections only, as they are read.
- Market events go out per tick (STREAM_TICK_SECONDS): the reader applies what it read, then
  `flush()` hands each market's batch to each of its subscriptions once. A subscription builds
  its messages from the tick's `Shared` cache, so a message that many subscriptions send
  identically (same protocol, wire, and for Kalshi the same sid and seq) is encoded and framed
  once and the same bytes go to every connection, written straight to the socket where the
  server allows it (pull.realtime.wire): per subscriber and tick, one dict lookup and one
  write, whatever the number of events.

Protocols (Kalshi's `/trade-api/ws/v2`, the app's `/api/v1/stream`) implement `Subscription`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.exchange import book_events
from pull.exchange import service as exchange
from pull.exchange.errors import MarketNotFound
from pull.exchange.schemas import MarketRead
from pull.kit import streams
from pull.realtime import metrics
from pull.realtime.wire import text_frame

log = logging.getLogger("pull.realtime")


class UnknownMarket(Exception):
    def __init__(self, ticker: str) -> None:
        super().__init__(ticker)
        self.ticker = ticker


@dataclass
class Feed:
    """One market's book as this process has applied it (bid levels per side, cents)."""

    ticker: str
    market_id: str = ""
    seq: int = 0
    yes: dict[int, int] = field(default_factory=dict)
    no: dict[int, int] = field(default_factory=dict)
    market: dict[str, Any] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)
    gap_since: float | None = None
    subs: set[Subscription] = field(default_factory=set)
    batch: list[dict[str, Any]] = field(default_factory=list)  # applied, not yet sent

    def apply(self, event: dict[str, Any]) -> None:
        for change in event["changes"]:
            side = self.yes if change["side"] == "yes" else self.no
            if change["count"]:
                side[int(change["price"])] = int(change["count"])
            else:
                side.pop(int(change["price"]), None)
        self.market = event.get("market") or self.market


Shared = dict[Any, Any]


class Subscription:
    """A protocol's subscription: one channel, on one connection, for some markets (None:
    all markets) or for its user's own events."""

    channel: str = ""
    needs_feed: bool = False  # book-ordered market events (and a snapshot on join)
    private: bool = False  # the user's own events

    def __init__(self, conn: Any, tickers: set[str] | None) -> None:
        self.conn = conn
        self.tickers = tickers

    def wants(self, ticker: str) -> bool:
        return self.tickers is None or ticker in self.tickers

    def on_snapshot(self, feed: Feed) -> None:  # joined, or reloaded after a gap
        pass

    def on_batch(self, feed: Feed | None, events: list[dict[str, Any]], shared: Shared) -> None:
        """This tick's book events (of `feed`, in seq order; or, for a subscription to every
        market, of all markets). `shared` is this tick's cache for encodings: a message that
        many subscriptions send identically is encoded once and its bytes delivered to each."""

    def on_lifecycle(self, event: dict[str, Any]) -> None:
        pass

    def on_user(self, event: dict[str, Any]) -> None:
        pass


class Hub:
    def __init__(
        self,
        *,
        redis_url: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        gap_seconds: float = 2.0,
        tick_seconds: float = 0.0,
    ) -> None:
        self.redis_url = redis_url
        self.sessionmaker = sessionmaker
        self.gap_seconds = gap_seconds
        self.tick_seconds = tick_seconds
        self.dirty: dict[str, Feed] = {}  # feeds with a batch to send
        self.loose: list[dict[str, Any]] = []  # this tick's book events, for `everywhere`
        self.lifecycles: list[dict[str, Any]] = []  # this tick's lifecycle events
        self.next_flush = 0.0
        self.feeds: dict[str, Feed] = {}
        self.everywhere: set[Subscription] = set()  # market channels without a market filter
        self.users: dict[str, set[Subscription]] = {}
        self.connections: set[Any] = set()
        self.last_ids: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self.connected = False

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="realtime-hub")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        backoff = 0.2
        redis: Redis | None = None
        last_gap_check = time.monotonic()
        while not self._stop.is_set():
            try:
                if redis is None:
                    redis = Redis.from_url(
                        self.redis_url, socket_connect_timeout=2, socket_timeout=10
                    )
                    await self._start_ids(redis)
                    metrics.HUB_CONNECTED.set(1)
                    self.connected = True
                    backoff = 0.2
                await self._read(redis, block=1000)
                if self.dirty or self.loose or self.lifecycles:
                    # one tick: wait out the rest of it while events collect in Redis, read
                    # them, then send everything per market, one write per connection. Ticks
                    # count from the start of the last flush: a fan-out that took most of the
                    # tick is not followed by a whole tick more (events read during it wait
                    # only for what is left)
                    wait = self.next_flush - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                        await self._read(redis, block=None)
                    self.next_flush = time.monotonic() + self.tick_seconds
                    self.flush()
                now = time.monotonic()
                if now - last_gap_check > 0.25:
                    last_gap_check = now
                    self._check_gaps(now)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                metrics.HUB_CONNECTED.set(0)
                self.connected = False
                metrics.HUB_RECONNECTS.inc()
                log.warning("realtime hub lost Redis", extra={"error": type(exc).__name__})
                if redis is not None:
                    with contextlib.suppress(Exception):
                        await redis.aclose()
                redis = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("realtime hub dispatch failed")
        if redis is not None:
            await redis.aclose()

    async def _read(self, redis: Redis, *, block: int | None) -> None:
        got: Any = await redis.xread(self.last_ids, count=5000, block=block)  # type: ignore[arg-type]
        for stream, entries in got or []:
            name = stream.decode() if isinstance(stream, bytes) else str(stream)
            for entry_id, fields in entries:
                self.last_ids[name] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                self._dispatch(name, fields)

    async def _start_ids(self, redis: Redis) -> None:
        """First connect: from the streams' current ends. Reconnects keep `last_ids`."""
        for name in (streams.MARKET_STREAM, streams.USER_STREAM):
            if name in self.last_ids:
                continue
            last = await redis.xrevrange(name, count=1)
            raw = last[0][0] if last else b"0-0"
            self.last_ids[name] = raw.decode() if isinstance(raw, bytes) else str(raw)

    # --- dispatch -----------------------------------------------------------------------------

    def _dispatch(self, stream: str, fields: dict[bytes, bytes]) -> None:
        event = streams.decode(fields[b"e"])
        metrics.EVENTS_IN.labels(stream).inc()
        if stream == streams.USER_STREAM:
            user_id = fields[b"u"].decode()
            for sub in list(self.users.get(user_id, ())):
                sub.on_user(event)
            return
        ticker = str(event.get("ticker", ""))
        if event.get("kind") in ("lifecycle", "event_lifecycle"):
            self.lifecycles.append(event)
            return
        if "ts" in event:
            metrics.LAG.observe(max(time.time() - int(event["ts"]) / 1000, 0.0))
        if self.everywhere:
            self.loose.append(event)
        feed = self.feeds.get(ticker)
        if feed is not None:
            self._offer(feed, event)

    def _offer(self, feed: Feed, event: dict[str, Any]) -> None:
        seq = int(event["seq"])
        if not feed.ready.is_set():
            feed.pending[seq] = event
            return
        if event.get("market_id") and event["market_id"] != feed.market_id:
            # the ticker names another market now (a test database was reset): start again
            feed.pending = {seq: event}
            self._reload(feed)
            return
        if seq <= feed.seq:
            metrics.DUPLICATES.inc()
            return
        feed.pending[seq] = event
        self._drain(feed)

    def _drain(self, feed: Feed) -> None:
        for old in [s for s in feed.pending if s <= feed.seq]:
            del feed.pending[old]
        while feed.seq + 1 in feed.pending:
            event = feed.pending.pop(feed.seq + 1)
            feed.apply(event)
            feed.seq += 1
            feed.batch.append(event)
            self.dirty[feed.ticker] = feed
        feed.gap_since = (feed.gap_since or time.monotonic()) if feed.pending else None

    # --- fan-out ------------------------------------------------------------------------------

    def flush(self) -> None:
        """Send this tick: per market, its batch to each subscription (one call per
        subscription, whatever the number of events), then lifecycle events."""
        started = time.perf_counter()
        dirty, self.dirty = self.dirty, {}
        for feed in dirty.values():
            self._flush_feed(feed)
        loose, self.loose = self.loose, []
        if loose:
            shared: Shared = {}
            for sub in list(self.everywhere):
                sub.on_batch(None, loose, shared)
        lifecycles, self.lifecycles = self.lifecycles, []
        for event in lifecycles:
            ticker = str(event.get("ticker", ""))
            targets = set(self.everywhere)
            lfeed = self.feeds.get(ticker)
            if lfeed is not None:
                targets |= lfeed.subs
            for sub in targets:
                if sub.wants(ticker):
                    sub.on_lifecycle(event)
        metrics.FANOUT.observe(time.perf_counter() - started)

    def _flush_feed(self, feed: Feed) -> None:
        events, feed.batch = feed.batch, []
        self.dirty.pop(feed.ticker, None)
        if not events:
            return
        shared: Shared = {}
        for sub in list(feed.subs):
            sub.on_batch(feed, events, shared)

    def snapshot(self, sub: Subscription, feed: Feed) -> None:
        """Send `sub` a snapshot of `feed` now: first the feed's unsent batch goes to its
        subscriptions, so the snapshot is never followed by deltas it already holds."""
        self._flush_feed(feed)
        sub.on_snapshot(feed)

    def _check_gaps(self, now: float) -> None:
        for feed in list(self.feeds.values()):
            if feed.gap_since is not None and now - feed.gap_since > self.gap_seconds:
                metrics.RESYNCS.inc()
                log.info("book gap, reloading", extra={"ticker": feed.ticker, "seq": feed.seq})
                self._reload(feed)

    def _reload(self, feed: Feed) -> None:
        feed.ready.clear()
        feed.gap_since = None
        self._spawn(self._load(feed, resend=True))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load(self, feed: Feed, *, resend: bool = False) -> None:
        try:
            async with self.sessionmaker() as session:
                state = await book_events.read_book(session, ticker=feed.ticker)
                market = await exchange.get_market(session=session, ticker=feed.ticker)
        except MarketNotFound:
            state = None
        except Exception:
            log.exception("book load failed", extra={"ticker": feed.ticker})
            await asyncio.sleep(0.5)
            if feed.ticker in self.feeds:
                self._spawn(self._load(feed, resend=resend))
            return
        self._flush_feed(feed)  # what was applied before the reload goes out first
        if state is None:
            feed.market_id = ""
            feed.ready.set()
            return
        feed.market_id = str(state.market_id)
        feed.seq = state.seq
        feed.yes = {int(p): c for p, c in state.levels["yes"].items() if c}
        feed.no = {int(p): c for p, c in state.levels["no"].items() if c}
        feed.market = market_fields(market)
        feed.pending = {
            s: e for s, e in feed.pending.items() if e.get("market_id") == feed.market_id
        }
        feed.ready.set()
        if resend:
            for sub in list(feed.subs):
                sub.on_snapshot(feed)
        self._drain(feed)
        self._flush_feed(feed)  # events that waited for the load: now, not at the next read

    # --- subscriptions ------------------------------------------------------------------------

    async def watch(
        self,
        sub: Subscription,
        tickers: Iterable[str] | None,
        added: Callable[[], None] | None = None,
    ) -> None:
        """Add `sub` for `tickers` (None: every market); `added` runs once the markets are
        known and before any snapshot. Raises UnknownMarket (nothing added)."""
        if sub.private or tickers is None:
            if added is not None:
                added()
            if sub.private:
                self.users.setdefault(sub.conn.user_id, set()).add(sub)
            else:
                self.everywhere.add(sub)
            return
        wanted = list(dict.fromkeys(tickers))
        feeds = [await self._feed(t) for t in wanted]
        missing = [f.ticker for f in feeds if not f.market_id]
        if missing:
            for f in feeds:
                self._release(f)
            raise UnknownMarket(missing[0])
        if added is not None:
            added()
        for f in feeds:
            self._flush_feed(f)
            f.subs.add(sub)
            sub.on_snapshot(f)
            self._release(f)

    async def _feed(self, ticker: str) -> Feed:
        feed = self.feeds.get(ticker)
        if feed is None:
            feed = self.feeds[ticker] = Feed(ticker=ticker)
            feed.subs.add(_HOLD)
            await self._load(feed)
        else:
            feed.subs.add(_HOLD)
            await feed.ready.wait()
        return feed

    def _release(self, feed: Feed) -> None:
        feed.subs.discard(_HOLD)
        if not feed.subs and self.feeds.get(feed.ticker) is feed:
            del self.feeds[feed.ticker]

    def unwatch(self, sub: Subscription, tickers: Iterable[str] | None = None) -> None:
        """Remove `sub` from `tickers` (None: from everything)."""
        if sub.private:
            subs = self.users.get(sub.conn.user_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self.users[sub.conn.user_id]
            return
        if tickers is None:
            self.everywhere.discard(sub)
            names = list(self.feeds)
        else:
            names = list(tickers)
        for ticker in names:
            feed = self.feeds.get(ticker)
            if feed is not None and sub in feed.subs:
                feed.subs.discard(sub)
                self._release(feed)

    def feed(self, ticker: str) -> Feed | None:
        return self.feeds.get(ticker)


class _Hold(Subscription):
    """Keeps a feed alive while a subscribe command waits for its load."""


_HOLD = _Hold(None, set())


def pack(wire: str, items: list[tuple[str, bytes]]) -> bytes | list[str]:
    """Messages (kind, JSON bytes) as one payload for `Connection.deliver` on `wire`: frames
    for a raw socket, text messages otherwise (SSE adds its `event:` framing)."""
    if wire == "raw":
        return b"".join([text_frame(body) for _, body in items])
    if wire == "sse":
        return [f"event: {kind}\ndata: {body.decode()}\n\n" for kind, body in items]
    return [body.decode() for _, body in items]


def market_fields(m: MarketRead) -> dict[str, Any]:
    return {
        "ticker": m.ticker,
        "status": m.status,
        "last_price": m.last_price,
        "yes_bid": m.yes_bid,
        "yes_ask": m.yes_ask,
        "volume": m.volume,
        "open_interest": m.open_interest,
        "result": m.result,
    }


def new_id() -> str:
    return uuid.uuid4().hex
