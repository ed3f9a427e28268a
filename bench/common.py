"""Shared benchmark plumbing: an embedded stack, real server processes, wrk runs."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from pull import devstack
from pull.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


@dataclass
class Stack:
    database_url: str
    redis_url: str
    temporal_address: str
    postgres_port: int | None


@contextmanager
def stack() -> Iterator[Stack]:
    """Embedded PostgreSQL/Redis/Temporal unless DATABASE_URL etc. are set."""
    data = Path(tempfile.mkdtemp(prefix="pull-bench-"))
    started: list[devstack.Service] = []
    try:
        db = os.environ.get("DATABASE_URL")
        port = None
        if not db:
            port = devstack.free_port()
            svc, db = devstack.start_postgres(data, port)
            started.append(svc)
        redis = os.environ.get("REDIS_URL")
        if not redis:
            svc, redis = devstack.start_redis(data, devstack.free_port())
            started.append(svc)
        temporal = os.environ.get("TEMPORAL_ADDRESS")
        if not temporal:
            svc, temporal = devstack.start_temporal(data, devstack.quiet_free_port(), None)
            started.append(svc)
        upgrade(db)
        yield Stack(db, redis, temporal, port)
    finally:
        for svc in reversed(started):
            svc.stop()
        shutil.rmtree(data, ignore_errors=True)


@contextmanager
def server(args: list[str], env: dict[str, str], health: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 240  # a loaded shared machine starts slowly
        while True:
            try:
                httpx.get(health, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"server {args} did not start") from None
                time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def pull_api(s: Stack, port: int, **extra: str) -> Any:
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": s.database_url,
        "REDIS_URL": s.redis_url,
        "TEMPORAL_ADDRESS": s.temporal_address,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "warning",
        # As in production, where the worker feeds a ClickHouse server: with chDB (these
        # benches' embedded default) `auto` makes the API process the ingester, and each chDB
        # insert costs ~80-100 ms of its CPU (about half the API CPU per order measured at
        # 13-45 orders/s). bench/analytics_http.py measures the ingester (ANALYTICS_INGEST=api).
        "ANALYTICS_INGEST": "off",
        **extra,
    }
    return server(
        [sys.executable, "-m", "pull.cli", "api"], env, f"http://127.0.0.1:{port}/health/live"
    )


def bare_server(port: int) -> Any:
    return server(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        dict(os.environ),
        f"http://127.0.0.1:{port}/",
    )


@dataclass
class Result:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(
    name: str, url: str, *, seconds: int = 10, connections: int = 32, script: Path | None = None
) -> Result:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    err = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(g) for g in err.groups()) if err else 0
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Result(name, rps, p50, p99, errors, int(non.group(1)) if non else 0)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=lambda o: asdict(o)))
    return path


def table(results: list[Result], baseline: Result) -> str:
    lines = [
        "| scenario | req/s | vs baseline | p50 ms | p99 ms | errors | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.requests_per_s:,.0f} | "
            f"{r.requests_per_s / baseline.requests_per_s:.0%} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.errors} | {r.non_2xx} |"
        )
    return "\n".join(lines)
