"""The authentication check's first level: answers kept in the API process's own memory, so a
signed-in request pays no Redis round trip while nothing about its user changed.

The second level is auth_cache (Redis, validated by the user's generation), the third
PostgreSQL. A local entry is only ever made from an answer that auth_cache validated (a Redis
entry of the current generation, or a database read stamped with the generation read before
it while no change was in flight), and it dies on any of:

- a message on the `auth:changed` channel naming its user. auth_cache publishes one in the same
  Redis transaction (MULTI) that moves the user's generation, before the change commits (the
  in-flight step), after it commits, and from the outbox relay's bump. An answer being made
  when a message arrives is not kept (the user's local version moved: `token` / `put`);
- the subscription not being known alive: a PING goes over it every PING_SECONDS and local
  entries are used only until LEASE_SECONDS after the last reply or message. A subscription
  that errors, closes or goes silent drops every local entry and the process answers from
  auth_cache (then PostgreSQL) until it has resubscribed;
- LOCAL_TTL seconds, and the session's own expiry (auth_cache.user_from).

So a revocation is never missed: its message is published before its commit, and on a dead or
silent subscription the local level is off within LEASE_SECONDS; in that partial outage (the
channel down while the process still answers requests) the window is LEASE_SECONDS, shorter
than auth_cache's own ENTRY_TTL window for a committing process that cannot reach Redis.

One instance per app (app.state.auth_local), started and stopped by the app's lifespan: no
process-global state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection

log = logging.getLogger("pull.identity.local_auth")

CHANNEL = "auth:changed"
PING_SECONDS = 0.5
LEASE_SECONDS = 1.5
LOCAL_TTL = 10.0
MAX_ENTRIES = 100_000
_PING = b"pull-auth-lease"


class LocalAuthCache:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._entries: dict[str, tuple[uuid.UUID, dict[str, Any], float]] = {}
        self._by_user: dict[uuid.UUID, set[str]] = {}
        self._versions: dict[uuid.UUID, int] = {}
        self._epoch = 0
        self._alive_until = 0.0
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._dead()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def live(self) -> bool:
        return time.monotonic() < self._alive_until

    # --- reading and writing ----------------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        """The local answer for `key` while the subscription is known alive."""
        now = time.monotonic()
        if now >= self._alive_until:
            return None
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[2] <= now:
            self._drop_key(key)
            return None
        return hit[1]

    def token(self, user_id: uuid.UUID) -> tuple[int, int] | None:
        """Taken before the answer is looked up elsewhere; `put` keeps the answer only if no
        message about the user (and no resubscription) came in between."""
        if not self.live():
            return None
        return (self._epoch, self._versions.get(user_id, 0))

    def put(
        self, key: str, user_id: uuid.UUID, value: dict[str, Any], token: tuple[int, int] | None
    ) -> None:
        if token is None or not self.live():
            return
        if token != (self._epoch, self._versions.get(user_id, 0)):
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._clear()
        self._entries[key] = (user_id, value, time.monotonic() + LOCAL_TTL)
        self._by_user.setdefault(user_id, set()).add(key)

    # --- invalidation ------------------------------------------------------------------------

    def changed(self, user_id: uuid.UUID) -> None:
        self._versions[user_id] = self._versions.get(user_id, 0) + 1
        for key in self._by_user.pop(user_id, set()):
            self._entries.pop(key, None)
        if len(self._versions) > MAX_ENTRIES:
            # versions only need to differ from a token taken before; a new epoch does that
            self._versions.clear()
            self._epoch += 1

    def _drop_key(self, key: str) -> None:
        hit = self._entries.pop(key, None)
        if hit is not None:
            keys = self._by_user.get(hit[0])
            if keys is not None:
                keys.discard(key)
                if not keys:
                    self._by_user.pop(hit[0], None)

    def _clear(self) -> None:
        self._entries.clear()
        self._by_user.clear()

    def _dead(self) -> None:
        self._alive_until = 0.0
        self._epoch += 1
        self._clear()

    def _message(self, data: bytes) -> None:
        try:
            user_id = uuid.UUID(data.decode())
        except ValueError:
            self._dead()  # not ours to read: trust nothing cached
            return
        self.changed(user_id)

    def _alive(self) -> None:
        self._alive_until = time.monotonic() + LEASE_SECONDS

    async def _run(self) -> None:
        while True:
            transport: asyncio.Transport | None = None
            try:
                lost = asyncio.get_running_loop().create_future()
                transport = await _connect(self._redis, _Subscriber(self, lost))
                while not lost.done():
                    transport.write(_command(b"PING", _PING))
                    await asyncio.wait([lost], timeout=PING_SECONDS)
                exc = lost.exception()
                if exc is not None:
                    raise exc
            except asyncio.CancelledError:
                self._dead()
                if transport is not None:
                    transport.close()
                raise
            except Exception as exc:  # Redis down or the connection broken: local level off
                log.warning("auth invalidations: subscription lost", extra={"error": repr(exc)})
            self._dead()
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
    assert isinstance(transport, asyncio.Transport)
    return transport


class _Subscriber(asyncio.Protocol):
    """The subscription, read in the event loop's I/O callback: a message is applied before any
    request that arrived after it is handled (the request's task runs on a later turn)."""

    def __init__(self, cache: LocalAuthCache, lost: asyncio.Future[None]) -> None:
        self.cache = cache
        self.lost = lost
        self.buf = bytearray()
        self.first = b""
        self.subscribed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.first + _command(b"SUBSCRIBE", CHANNEL.encode()))

    def connection_lost(self, exc: Exception | None) -> None:
        self.cache._dead()
        if not self.lost.done():
            self.lost.set_exception(exc or ConnectionError("subscription closed"))

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
                self.cache._message(reply[2])
            elif kind != b"pong":
                return
        elif reply != b"OK":  # AUTH's answer
            return
        if self.subscribed:
            self.cache._alive()


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
