"""Invalidation messages over Redis pub/sub, read in the event loop's I/O callback, with a
lease: what process-memory caches (identity.local_auth, exchange.read_cache) need to answer
without a Redis round trip per request and still never serve what a commit has changed.

One `Invalidations` per app (started and stopped by its lifespan). It keeps its own connection
to the app's Redis (same host, port, TLS and credentials), SUBSCRIBEs to the channels it was
given, and calls each channel's handler with the message's bytes *inside the I/O callback*: a
message is applied before any request that arrived after it is handled (a request's task runs
on a later turn of the loop). A PING goes over the connection every PING_SECONDS; `live()` is
true only until LEASE_SECONDS after the last reply. When the connection is lost, errs or goes
silent, `live()` turns false, `epoch` moves and every `on_dead` callback runs (the caches drop
everything): a cache must not answer from memory while not live, and must not keep an answer
made across an epoch change.

`fence()` is what a publisher awaits so that "published" means "delivered": it publishes a
token of its own on this process's fence channel, *after* its messages' PUBLISH has been
answered, and returns when the token comes back on this process's subscription. Redis writes a
message to every subscriber's socket before it reads the publisher's next command, so by then
the messages sit in every other subscribed process's socket, ahead of any request a caller
could send there next, and they are applied before that request is handled (above). Without
the fence, a publisher's caller that asks another process at once can get there before the
message does (seen in CI on a loaded machine: an answer cached before the commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
import weakref
from collections.abc import Callable
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.exceptions import RedisError

log = logging.getLogger("pull.kit.invalidation")

PING_SECONDS = 0.5
LEASE_SECONDS = 1.5
_PING = b"pull-lease"
FENCE_SECONDS = 0.5  # a fence not back by then: the caller goes on (the lease decides the rest)
_BY_REDIS: weakref.WeakKeyDictionary[Redis, Invalidations] = weakref.WeakKeyDictionary()


def of(redis: Any) -> Invalidations | None:
    """The started `Invalidations` of the app that owns this Redis client, if any."""
    return _BY_REDIS.get(redis) if isinstance(redis, Redis) else None


class Invalidations:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._handlers: dict[bytes, Callable[[bytes], None]] = {}
        self._on_dead: list[Callable[[], None]] = []
        self.epoch = 0
        self._alive_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._fence_channel = f"pull:fence:{os.getpid()}:{id(self):x}".encode()
        self._fences: dict[bytes, asyncio.Future[None]] = {}
        self._fence_seq = 0

    def handle(self, channel: str, handler: Callable[[bytes], None]) -> None:
        """Call `handler(message)` for each message on `channel` (before `start`)."""
        self._handlers[channel.encode()] = handler

    def on_dead(self, callback: Callable[[], None]) -> None:
        self._on_dead.append(callback)

    def start(self) -> None:
        if self._task is None:
            _BY_REDIS[self._redis] = self
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if _BY_REDIS.get(self._redis) is self:
            del _BY_REDIS[self._redis]
        self.dead()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def live(self) -> bool:
        return time.monotonic() < self._alive_until

    def alive(self) -> None:
        self._alive_until = time.monotonic() + LEASE_SECONDS

    def dead(self) -> None:
        self._alive_until = 0.0
        self.epoch += 1
        for callback in self._on_dead:
            callback()
        for waiter in self._fences.values():  # nothing more will come back on this connection
            if not waiter.done():
                waiter.set_result(None)
        self._fences.clear()

    def message(self, channel: bytes, data: bytes) -> None:
        if channel == self._fence_channel:
            waiter = self._fences.pop(data, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        handler = self._handlers.get(channel)
        if handler is not None:
            handler(data)

    async def fence(self) -> None:
        """Return once every message this process has had answered by Redis is in every
        subscriber's socket (see the module docstring). Call it after the PUBLISH's reply."""
        if not self.live():
            return  # no subscription to come back on: the other processes' leases decide
        self._fence_seq += 1
        token = b"%d" % self._fence_seq
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fences[token] = waiter
        try:
            await self._redis.publish(self._fence_channel.decode(), token)
            await asyncio.wait_for(asyncio.shield(waiter), timeout=FENCE_SECONDS)
        except (TimeoutError, RedisError, OSError):
            log.warning("invalidations: fence not back in time")
        finally:
            self._fences.pop(token, None)

    async def _run(self) -> None:
        while True:
            transport: asyncio.Transport | None = None
            try:
                lost: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
                channels = [*self._handlers, self._fence_channel]
                protocol = _Subscriber(self, lost, channels)
                transport = await _connect(self._redis, protocol)
                while not lost.done():
                    transport.write(_command(b"PING", _PING))
                    await asyncio.wait([lost], timeout=PING_SECONDS)
                raise lost.result()
            except asyncio.CancelledError:
                self.dead()
                if transport is not None:
                    transport.close()
                raise
            except Exception as exc:  # Redis down or the connection broken: caches off
                log.warning("invalidations: subscription lost", extra={"error": repr(exc)})
            self.dead()
            if transport is not None:
                transport.close()
            await asyncio.sleep(0.5)


def _command(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


async def _connect(redis: Redis, protocol: _Subscriber) -> asyncio.Transport:
    """A connection of its own to the app's Redis (same host, port, TLS and credentials)."""
    kwargs = redis.connection_pool.connection_kwargs
    host = str(kwargs.get("host", "localhost"))
    port = int(kwargs.get("port", 6379))
    ssl_context: ssl.SSLContext | None = None
    if issubclass(redis.connection_pool.connection_class, SSLConnection):
        ssl_context = ssl.create_default_context()
        if kwargs.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE
        elif kwargs.get("ssl_ca_certs"):
            ssl_context.load_verify_locations(cafile=str(kwargs["ssl_ca_certs"]))
    username, password = kwargs.get("username"), kwargs.get("password")
    if password:
        auth = [b"AUTH"] + ([str(username).encode()] if username else []) + [str(password).encode()]
        protocol.first = _command(*auth)
    loop = asyncio.get_running_loop()
    path = kwargs.get("path")
    if issubclass(redis.connection_pool.connection_class, UnixDomainSocketConnection) and path:
        opening = loop.create_unix_connection(lambda: protocol, str(path))
    else:
        opening = loop.create_connection(lambda: protocol, host, port, ssl=ssl_context)
    transport, _ = await asyncio.wait_for(opening, timeout=2.0)
    return transport


class _Subscriber(asyncio.Protocol):
    """The subscription, read in the event loop's I/O callback."""

    def __init__(
        self, owner: Invalidations, lost: asyncio.Future[Exception], channels: list[bytes]
    ) -> None:
        self.owner = owner
        self.lost = lost
        self.channels = channels
        self.buf = bytearray()
        self.first = b""
        self.subscribed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's is not a subclass)
        self.transport.write(self.first + _command(b"SUBSCRIBE", *self.channels))

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.dead()
        if not self.lost.done():
            self.lost.set_result(exc or ConnectionError("subscription closed"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            while True:
                reply, used = _parse(self.buf, 0)
                if used == 0:
                    return
                del self.buf[:used]
                self._reply(reply)
        except ValueError as exc:
            if self.transport is not None:
                self.transport.close()
            self.connection_lost(exc)

    def _reply(self, reply: Any) -> None:
        if isinstance(reply, Exception):
            raise ValueError(str(reply))
        if isinstance(reply, list) and len(reply) >= 2 and isinstance(reply[0], bytes):
            kind = reply[0].lower()
            if kind == b"subscribe":
                self.subscribed = True
            elif kind == b"message" and len(reply) == 3 and isinstance(reply[2], bytes):
                self.owner.message(bytes(reply[1]), reply[2])
            elif kind != b"pong":
                return
        elif reply != b"OK":  # AUTH's answer
            return
        if self.subscribed:
            self.owner.alive()


def _parse(buf: bytearray, pos: int) -> tuple[Any, int]:
    """One RESP2 reply from `buf[pos:]`: (reply, bytes used), or (None, 0) if incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None, 0
    kind, line = buf[pos : pos + 1], bytes(buf[pos + 1 : end])
    nxt = end + 2
    if kind == b"+":
        return line, nxt - pos
    if kind == b"-":
        return ValueError(line.decode(errors="replace")), nxt - pos
    if kind == b":":
        return int(line), nxt - pos
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, nxt - pos
        if len(buf) < nxt + n + 2:
            return None, 0
        return bytes(buf[nxt : nxt + n]), nxt + n + 2 - pos
    if kind == b"*":
        items = []
        for _ in range(int(line)):
            item, used = _parse(buf, nxt)
            if used == 0:
                return None, 0
            items.append(item)
            nxt += used
        return items, nxt - pos
    raise ValueError("not a RESP reply")
