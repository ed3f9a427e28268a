"""chDB shared by every process of one machine: one process owns the engine, the others relay.

chDB is one engine per process and one process per data directory. So that every API worker
(and `pull analytics backfill` or `pull migrate` while the API runs) can use the same data,
the first process to take an exclusive `flock` on `<CLICKHOUSE_CHDB_PATH>.owner.lock` opens
the engine and answers the `Warehouse` calls (`command`, `insert`, `insert_raw`, `rows`) of
the others on a Unix socket (`<CLICKHOUSE_CHDB_PATH>.owner.sock`, mode 0600, each request carrying
INTERNAL_API_KEY). Every other process gets a `RelayWarehouse`, which sends those calls there.
When the owner goes away (the kernel drops its lock with the process), the next call of a
relaying process takes the lock and becomes the owner. A ClickHouse server needs none of this.

Wire format: a 4-byte big-endian length, then a JSON object; values that JSON lacks (dates,
datetimes, UUIDs, decimals, tuples, bytes, maps) travel as tagged objects (`{"$d": ...}`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import logging
import os
import socket
import socketserver
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from pull.analytics.client import Target, Warehouse
from pull.analytics.errors import AnalyticsUnavailable

log = logging.getLogger("pull.analytics")

MAX_FRAME = 256 * 1024 * 1024
CONNECT_WAIT_SECONDS = 15.0  # an owner opening the engine binds its socket after
CALL_TIMEOUT_SECONDS = 300.0


class RemoteError(Exception):
    """ClickHouse refused a statement in the owner process (its message, as it said it)."""


# --- values on the wire ---------------------------------------------------------------------


def encode(v: Any) -> Any:
    t = type(v)
    if t is str or t is int or t is float or t is bool or v is None:
        return v
    if t is list:
        return [encode(x) for x in v]
    if t is tuple:
        return {"$t": [encode(x) for x in v]}
    if isinstance(v, dt.datetime):
        return {"$dt": v.isoformat()}
    if isinstance(v, dt.date):
        return {"$d": v.isoformat()}
    if isinstance(v, uuid.UUID):
        return {"$u": str(v)}
    if isinstance(v, Decimal):
        return {"$dec": str(v)}
    if isinstance(v, bytes | bytearray):
        return {"$b": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, dict):
        return {"$m": [[encode(k), encode(x)] for k, x in v.items()]}
    if isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, list | tuple):
        return [encode(x) for x in v]
    raise TypeError(f"cannot relay a {t.__name__}")


_TAGS: dict[str, Callable[[Any], Any]] = {
    "$t": lambda x: tuple(decode(i) for i in x),
    "$dt": dt.datetime.fromisoformat,
    "$d": dt.date.fromisoformat,
    "$u": uuid.UUID,
    "$dec": Decimal,
    "$b": base64.b64decode,
    "$m": lambda x: {decode(k): decode(i) for k, i in x},
}


def decode(v: Any) -> Any:
    t = type(v)
    if t is list:
        return [decode(x) for x in v]
    if t is dict:
        if len(v) == 1:
            ((tag, value),) = v.items()
            fn = _TAGS.get(tag)
            if fn is not None:
                return fn(value)
        return {k: decode(x) for k, x in v.items()}
    return v


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    body = orjson.dumps(message)
    sock.sendall(struct.pack(">I", len(body)) + body)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket) -> dict[str, Any]:
    (size,) = struct.unpack(">I", _recv_exact(sock, 4))
    if size > MAX_FRAME:
        raise ConnectionError(f"frame of {size} bytes is over {MAX_FRAME}")
    message = orjson.loads(_recv_exact(sock, size))
    if not isinstance(message, dict):
        raise ConnectionError("not a message")
    return message


# --- where the lock and the socket are ------------------------------------------------------


def lock_path(target: Target) -> Path:
    return Path(f"{target.chdb_path}.owner.lock")


def socket_path(target: Target) -> str:
    """Next to the data directory, or (paths of Unix sockets have at most 107 bytes) in the
    temporary directory under a name derived from it."""
    beside = f"{target.chdb_path}.owner.sock"
    if len(beside.encode()) < 100:
        return beside
    digest = hashlib.sha256(str(target.chdb_path).encode()).hexdigest()[:24]
    return str(Path(tempfile.gettempdir()) / f"pull-chdb-{digest}.sock")


def try_lock(target: Target) -> int | None:
    """An open descriptor holding the owner's lock, or None when another process holds it."""
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


# --- the owner ------------------------------------------------------------------------------


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(CALL_TIMEOUT_SECONDS)
        try:
            request = _recv(sock)
        except (OSError, ConnectionError, orjson.JSONDecodeError):
            return
        key = request.get("key")
        if not isinstance(key, str) or not hmac.compare_digest(key, self.server.key):
            _send(sock, {"ok": False, "error": "forbidden"})
            return
        try:
            result = self.server.dispatch(request)
        except Exception as exc:  # the statement's error goes back to the caller
            with contextlib.suppress(OSError):
                _send(sock, {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:4000]})
            return
        with contextlib.suppress(OSError):
            _send(sock, {"ok": True, "result": result})


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, path: str, wh: Warehouse, key: str) -> None:
        self.wh = wh
        self.key = key
        super().__init__(path, _Handler)

    def dispatch(self, request: dict[str, Any]) -> Any:
        op = request.get("op")
        params = decode(request.get("parameters"))
        if op == "rows":
            return encode(self.wh.rows(str(request["sql"]), params))
        if op == "command":
            self.wh.command(str(request["sql"]), params)
            return None
        if op == "insert":
            types = request.get("types")
            self.wh.insert(
                str(request["table"]),
                decode(request["rows"]),
                [str(c) for c in request["columns"]],
                column_oriented=bool(request.get("column_oriented")),
                types=[str(t) for t in types] if types is not None else None,
            )
            return None
        if op == "insert_raw":
            self.wh.insert_raw(
                str(request["table"]),
                base64.b64decode(request["data"]),
                [str(c) for c in request["columns"]],
            )
            return None
        if op == "ping":
            return os.getpid()
        raise ValueError(f"unknown operation {op!r}")


class Owner:
    """This process owns the chDB engine: it holds the lock and serves the others."""

    def __init__(self, target: Target, wh: Warehouse, lock_fd: int, key: str) -> None:
        self.target = target
        self.wh = wh
        self._lock_fd: int | None = lock_fd
        self.path = socket_path(target)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a dead owner's (we hold the lock)
        old = os.umask(0o177)
        try:
            self._server = _Server(self.path, wh, key)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="chdb-owner", daemon=True
        )
        self._thread.start()
        log.info("chdb owner", extra={"socket": self.path, "pid": os.getpid()})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        with contextlib.suppress(Exception):
            self.wh.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None


# --- the other processes --------------------------------------------------------------------


class RelayWarehouse:
    """A `Warehouse` whose calls run in the owner process (see the module's docstring)."""

    embedded = True

    def __init__(self, target: Target, key: str, promote: Callable[[], Warehouse | None]) -> None:
        self.target = target
        self.database = target.database
        self.key = key
        self.path = socket_path(target)
        # takes the lock and opens chDB here when the owner is gone; None if another has it
        self._promote = promote
        self._local: Warehouse | None = None
        self._lock = threading.Lock()

    @property
    def relayed(self) -> bool:
        return self._local is None

    def _connect(self) -> socket.socket | None:
        deadline = time.monotonic() + CONNECT_WAIT_SECONDS
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
            with self._lock:
                if self._local is None:
                    self._local = self._promote()
                if self._local is not None:
                    return None
            if time.monotonic() > deadline:
                raise AnalyticsUnavailable(
                    "the process that owns chDB is not answering (it may be starting)"
                )
            time.sleep(0.1)

    def _call(self, message: dict[str, Any]) -> Any:
        sock = self._connect()
        if sock is None:
            raise _Promoted
        try:
            sock.settimeout(CALL_TIMEOUT_SECONDS)
            _send(sock, {"key": self.key, **message})
            answer = _recv(sock)
        except (OSError, ConnectionError) as exc:
            raise AnalyticsUnavailable(f"chDB owner call failed ({type(exc).__name__})") from exc
        finally:
            sock.close()
        if not answer.get("ok"):
            error = str(answer.get("error"))
            if error == "forbidden":
                raise AnalyticsUnavailable("the chDB owner refused this process's key")
            raise RemoteError(error)
        return decode(answer.get("result"))

    def own(self) -> bool:
        """Whether this process is (now) the owner: true when no owner answers and the lock
        was free. The ingester runs only in the owner."""
        if self._local is not None:
            return True
        try:
            self._call({"op": "ping"})
        except _Promoted:
            return True
        except AnalyticsUnavailable:
            return False
        return False

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        if self._local is None:
            try:
                self._call({"op": "command", "sql": sql, "parameters": encode(parameters)})
                return
            except _Promoted:
                pass
        assert self._local is not None
        self._local.command(sql, parameters)

    def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        columns: Sequence[str],
        *,
        column_oriented: bool = False,
        types: Sequence[str] | None = None,
    ) -> None:
        if self._local is None:
            try:
                self._call(
                    {
                        "op": "insert",
                        "table": table,
                        "rows": encode([list(r) for r in rows]),
                        "columns": list(columns),
                        "column_oriented": column_oriented,
                        "types": list(types) if types is not None else None,
                    }
                )
                return
            except _Promoted:
                pass
        assert self._local is not None
        self._local.insert(table, rows, columns, column_oriented=column_oriented, types=types)

    def insert_raw(self, table: str, data: bytes, columns: Sequence[str]) -> None:
        if self._local is None:
            try:
                self._call(
                    {
                        "op": "insert_raw",
                        "table": table,
                        "data": base64.b64encode(data).decode(),
                        "columns": list(columns),
                    }
                )
                return
            except _Promoted:
                pass
        assert self._local is not None
        self._local.insert_raw(table, data, columns)

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if self._local is None:
            try:
                result = self._call({"op": "rows", "sql": sql, "parameters": encode(parameters)})
                return [tuple(r) for r in result]
            except _Promoted:
                pass
        assert self._local is not None
        return self._local.rows(sql, parameters)

    def close(self) -> None:
        """Nothing to release here: a promoted relay's engine is closed with its Owner."""


class _Promoted(Exception):
    pass
