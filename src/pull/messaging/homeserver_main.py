"""Entry point of the embedded Synapse (`pull dev`, the tests, the benchmarks).

Synapse's SQLite engine opens its connections in WAL mode with SQLite's default
`synchronous = FULL`, which syncs the write-ahead log to disk on every commit; a message
send is several commits. The embedded homeserver runs with `synchronous = NORMAL` (in WAL
mode still safe against a crash of the process; only an OS crash or power loss can lose the
last commits), then starts Synapse as `python -m synapse.app.homeserver` would. A production
homeserver is Synapse's own deployment (`MATRIX_HOMESERVER_URL`), not this.

Synapse is imported by name (it is a large typed package; the type checker need not read it).
"""

from __future__ import annotations

import importlib
from typing import Any


def _normal_sync() -> None:
    engine: Any = importlib.import_module("synapse.storage.engines.sqlite").Sqlite3Engine
    original = engine.on_new_connection

    def on_new_connection(self: Any, db_conn: Any) -> None:
        original(self, db_conn)
        db_conn.execute("PRAGMA synchronous = NORMAL;")
        db_conn.commit()

    engine.on_new_connection = on_new_connection


def main() -> None:
    _normal_sync()
    importlib.import_module("synapse.app.homeserver").main()


if __name__ == "__main__":
    main()
