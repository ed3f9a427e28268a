"""The ClickHouse connection: clickhouse-connect against a server, or chDB in-process.

Both are clickhouse-connect clients (`get_client(interface='chdb', path=...)` runs the chDB
engine inside this process and answers the same `command`/`insert`/`query` calls), so every
query in this module runs unchanged on either. The code depends only on `Warehouse`, a small
Protocol, and reaches it through `warehouse_for(settings)`.

chDB is one engine per process and one process per data directory: the process that takes the
directory's owner lock opens it and keeps it until `close_warehouses()`; every other process
reaches it through that owner (`pull.analytics.relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from pull.analytics.errors import AnalyticsUnavailable
from pull.config import Settings


class Warehouse(Protocol):
    """What the analytics module needs from ClickHouse (blocking calls; see `run`)."""

    database: str
    embedded: bool

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None: ...

    def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        columns: Sequence[str],
        *,
        column_oriented: bool = False,
        types: Sequence[str] | None = None,
    ) -> None:
        """`rows` are rows, or with `column_oriented` one sequence per column; `types` (the
        columns' ClickHouse types) spares the client a DESCRIBE of the table per insert."""

    def insert_raw(self, table: str, data: bytes, columns: Sequence[str]) -> None:
        """Rows as TabSeparated text (PostgreSQL's COPY text format), parsed by ClickHouse."""

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Target:
    """Where ClickHouse is: a chDB directory, or an HTTP server."""

    database: str
    chdb_path: str | None = None
    host: str = ""
    port: int = 0
    username: str = "default"
    password: str = ""
    secure: bool = False

    @property
    def embedded(self) -> bool:
        return self.chdb_path is not None


def target_for(settings: Settings) -> Target:
    db = settings.clickhouse_database
    if settings.clickhouse_url:
        u = urlsplit(settings.clickhouse_url)
        if u.scheme not in ("http", "https", "clickhouse", "clickhouses") or not u.hostname:
            raise ValueError("CLICKHOUSE_URL must be http[s]://[user:password@]host[:port][/db]")
        secure = u.scheme in ("https", "clickhouses")
        path_db = u.path.strip("/")
        return Target(
            database=path_db or db,
            host=u.hostname,
            port=u.port or (8443 if secure else 8123),
            username=unquote(u.username) if u.username else settings.clickhouse_user,
            password=unquote(u.password) if u.password else settings.clickhouse_password,
            secure=secure,
        )
    if settings.clickhouse_host:
        secure = settings.clickhouse_secure
        return Target(
            database=db,
            host=settings.clickhouse_host,
            port=settings.clickhouse_port or (8443 if secure else 8123),
            username=settings.clickhouse_user,
            password=settings.clickhouse_password,
            secure=secure,
        )
    path = settings.clickhouse_chdb_path or str(Path(settings.data_dir) / "chdb")
    return Target(database=db, chdb_path=str(Path(path).absolute()))


class ConnectWarehouse:
    """A clickhouse-connect client (server or chDB), serialized by a lock for chDB."""

    def __init__(self, target: Target) -> None:
        import clickhouse_connect

        self.target = target
        self.database = target.database
        self.embedded = target.embedded
        self._lock = threading.Lock()
        try:
            if target.chdb_path is not None:
                Path(target.chdb_path).mkdir(parents=True, exist_ok=True)
                self._client = clickhouse_connect.get_client(
                    interface="chdb", path=target.chdb_path
                )
            else:
                self._client = clickhouse_connect.get_client(
                    host=target.host,
                    port=target.port,
                    username=target.username,
                    password=target.password,
                    secure=target.secure,
                    # the database may not exist yet: `pull migrate` creates it
                    database="default",
                    settings={"async_insert": 0},
                )
        except Exception as exc:
            raise AnalyticsUnavailable(
                f"ClickHouse is not reachable ({type(exc).__name__}: {exc})"[:500]
            ) from exc

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._client.command(sql, parameters=parameters)

    def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        columns: Sequence[str],
        *,
        column_oriented: bool = False,
        types: Sequence[str] | None = None,
    ) -> None:
        if not rows or (column_oriented and not rows[0]):
            return
        with self._lock:
            self._client.insert(
                f"{self.database}.{table}",
                rows if isinstance(rows, list) else list(rows),
                column_names=list(columns),
                column_type_names=list(types) if types is not None else None,
                column_oriented=column_oriented,
            )

    def insert_raw(self, table: str, data: bytes, columns: Sequence[str]) -> None:
        if not data:
            return
        with self._lock:
            self._client.raw_insert(
                f"{self.database}.{table}",
                column_names=list(columns),
                insert_block=data,
                fmt="TabSeparated",
            )

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock:
            result = self._client.query(sql, parameters=parameters)
            return [tuple(r) for r in result.result_rows]

    def close(self) -> None:
        with self._lock:
            self._client.close()


_open: dict[Target, Warehouse] = {}
_owned: dict[Target, Any] = {}  # the relay.Owner of each chDB this process owns
_open_lock = threading.RLock()


def warehouse_for(settings: Settings) -> Warehouse:
    """The process's client for `settings`' ClickHouse, opened on first use. With chDB: the
    engine itself when this process is the directory's owner, else a relay to the owner
    (pull.analytics.relay)."""
    target = target_for(settings)
    with _open_lock:
        wh = _open.get(target)
        if wh is not None:
            return wh
        if target.embedded:
            other = [t for t in _open if t.embedded]
            if other:
                raise AnalyticsUnavailable(
                    f"this process already has chDB open at {other[0].chdb_path}"
                )
            wh = _embedded(target, settings.internal_api_key)
        else:
            wh = ConnectWarehouse(target)
        _open[target] = wh
        return wh


def _embedded(target: Target, key: str) -> Warehouse:
    from pull.analytics import relay

    owned = _own(target, key)
    if owned is not None:
        return owned
    return relay.RelayWarehouse(target, key, promote=lambda: _own(target, key))


def _own(target: Target, key: str) -> Warehouse | None:
    """Take the owner's lock of a chDB directory and open the engine, or None if another
    process holds it."""
    from pull.analytics import relay

    with _open_lock:
        fd = relay.try_lock(target)
        if fd is None:
            return None
        try:
            wh = ConnectWarehouse(target)
        except BaseException:
            os.close(fd)
            raise
        try:
            _owned[target] = relay.Owner(target, wh, fd, key)
        except BaseException:
            wh.close()
            os.close(fd)
            raise
        return wh


@contextlib.contextmanager
def briefly(settings: Settings) -> Iterator[Warehouse]:
    """A warehouse for one job (`pull migrate`): the process's own if it has one open; with
    chDB, the engine opened and closed again if no process owns it (so the API can open it
    next), else a relay to the owner; a server's client otherwise."""
    target = target_for(settings)
    with _open_lock:
        current = _open.get(target)
    if current is not None or not target.embedded:
        yield current if current is not None else warehouse_for(settings)
        return
    from pull.analytics import relay

    fd = relay.try_lock(target)
    if fd is None:
        yield relay.RelayWarehouse(target, settings.internal_api_key, promote=lambda: None)
        return
    try:
        wh = ConnectWarehouse(target)
        try:
            yield wh
        finally:
            wh.close()
    finally:
        os.close(fd)


def close_warehouses() -> None:
    """Close every client this process opened (chDB releases its directory and the owner's
    lock)."""
    with _open_lock:
        engines = {id(owner.wh) for owner in _owned.values()}
        for owner in _owned.values():
            try:
                owner.close()  # its engine too
            except Exception:  # noqa: S110 - closing on shutdown, nothing to do about it
                pass
        for wh in _open.values():
            if id(wh) in engines:
                continue
            try:
                wh.close()
            except Exception:  # noqa: S110 - closing on shutdown, nothing to do about it
                pass
        _owned.clear()
        _open.clear()


async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking warehouse call off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)
