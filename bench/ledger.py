"""Ledger benchmark: transfers per second, single and batched, next to pgbench's TPS.

Run: `uv run python -m bench.ledger`. One embedded PostgreSQL (the test configuration:
fsync and synchronous_commit on) serves both pgbench and the ledger in the same run. The
ledger runs in this process through the real service (`pull.ledger.service.transfer` on a
SQLAlchemy AsyncSession, as the exchange calls it), with CONCURRENCY tasks. Results go to
bench/results/ledger.json and to the "Ledger" section of docs/performance.md (only that
section is rewritten).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.common import ROOT, machine, write
from pull import devstack
from pull.kit.db import make_engine, make_sessionmaker
from pull.ledger.service import Leg, post_pending, system_account, transfer, user_account
from pull.migrate import upgrade

SECONDS = 10
CONCURRENCY = 8
USERS = 1_000
BATCH = 100


@dataclass
class Figure:
    name: str
    transfers_per_s: float
    transactions_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def pgbench(port: int, seconds: int) -> Figure:
    """TPC-B-like pgbench at scale 10 (10 branch rows), same clients as the ledger runs."""
    bin_dir = devstack.pg_bin_dir()
    common = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    subprocess.run(
        [str(bin_dir / "createdb"), *common, "pgbench"], check=False, capture_output=True
    )
    subprocess.run(
        [str(bin_dir / "pgbench"), *common, "-i", "-q", "-s", "10", "pgbench"],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [
            str(bin_dir / "pgbench"),
            *common,
            "-c",
            str(CONCURRENCY),
            "-j",
            "2",
            "-T",
            str(seconds),
            "pgbench",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))  # type: ignore[union-attr]
    return Figure("pgbench TPC-B (scale 10, baseline)", tps, tps, latency, float("nan"), 0)


async def make_users(maker: async_sessionmaker[AsyncSession], count: int) -> list[uuid.UUID]:
    users = [uuid.uuid4() for _ in range(count)]
    async with maker() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO users (id, email, password_hash, referral_code) "
                "SELECT u, u::text || '@bench.example', 'x', substr(md5(u::text), 1, 8) "
                "FROM unnest(CAST(:ids AS uuid[])) AS u"
            ),
            {"ids": users},
        )
        clearing = system_account("bank_clearing")
        for user in users:
            await transfer(
                session=s,
                idempotency_key=f"seed-{user}",
                kind="deposit",
                legs=[Leg(clearing, -(10**9)), Leg(user_account(user, "cash"), 10**9)],
            )
    return users


Op = Callable[[AsyncSession, int, int], Awaitable[int]]
_serial = itertools.count()


async def run(
    name: str, maker: async_sessionmaker[AsyncSession], op: Op, *, seconds: int
) -> Figure:
    """CONCURRENCY tasks loop: open a session, run `op` (returns transfers made), commit."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    transfers = 0
    errors = 0

    async def worker(w: int) -> None:
        nonlocal transfers, errors
        while time.monotonic() < deadline:
            n = next(_serial)
            t0 = time.perf_counter()
            try:
                async with maker() as s, s.begin():
                    made = await op(s, n, w)
            except Exception as exc:
                errors += 1
                if errors <= 3:
                    print(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
                continue
            latencies.append(time.perf_counter() - t0)
            transfers += made

    start = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    elapsed = time.monotonic() - start
    latencies.sort()
    return Figure(
        name,
        transfers / elapsed,
        len(latencies) / elapsed,
        statistics.median(latencies) * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
        errors,
    )


async def ledger_figures(url: str, seconds: int) -> list[Figure]:
    engine = make_engine(url, pool_size=CONCURRENCY, max_overflow=0)
    maker = make_sessionmaker(engine)
    users = await make_users(maker, USERS)
    run_id = uuid.uuid4().hex[:8]
    fees = system_account("fee_revenue")

    def pair() -> tuple[uuid.UUID, uuid.UUID]:
        a, b = random.sample(users, 2)
        return a, b

    async def user_to_user(s: AsyncSession, n: int, w: int) -> int:
        a, b = pair()
        await transfer(
            session=s,
            idempotency_key=f"{run_id}-u2u-{n}",
            kind="p2p",
            legs=[Leg(user_account(a, "cash"), -1), Leg(user_account(b, "cash"), 1)],
        )
        return 1

    async def with_fee(s: AsyncSession, n: int, w: int) -> int:
        a, b = pair()
        await transfer(
            session=s,
            idempotency_key=f"{run_id}-fee-{n}",
            kind="trade",
            legs=[
                Leg(user_account(a, "cash"), -3),
                Leg(user_account(b, "cash"), 2),
                Leg(fees, 1),
            ],
        )
        return 1

    async def batched(s: AsyncSession, n: int, w: int) -> int:
        # Each client batches within its own slice of users: transactions that each lock many
        # accounts in arbitrary order would deadlock one another (order placement avoids that
        # by serializing per market).
        mine = users[w::CONCURRENCY]
        for i in range(BATCH):
            a, b = random.sample(mine, 2)
            await transfer(
                session=s,
                idempotency_key=f"{run_id}-batch-{n}-{i}",
                kind="p2p",
                legs=[Leg(user_account(a, "cash"), -1), Leg(user_account(b, "cash"), 1)],
            )
        return BATCH

    async def hold_and_post(s: AsyncSession, n: int, w: int) -> int:
        a, _ = pair()
        key = f"{run_id}-hold-{n}"
        await transfer(
            session=s,
            idempotency_key=key,
            kind="order",
            legs=[Leg(user_account(a, "cash"), -10), Leg(user_account(a, "held"), 10)],
            pending=True,
        )
        await post_pending(session=s, idempotency_key=key, amount=6)
        return 2

    async def replay(s: AsyncSession, n: int, w: int) -> int:
        await transfer(
            session=s,
            idempotency_key=f"seed-{users[n % USERS]}",
            kind="deposit",
            legs=[
                Leg(system_account("bank_clearing"), -(10**9)),
                Leg(user_account(users[n % USERS], "cash"), 10**9),
            ],
        )
        return 1

    scenarios: list[tuple[str, Op]] = [
        ("transfer user -> user, one per transaction", user_to_user),
        ("transfer user -> user + fee_revenue (hot system row)", with_fee),
        (f"transfer user -> user, {BATCH} per transaction", batched),
        ("hold, then partial post (2 transfers per transaction)", hold_and_post),
        ("replay of an existing idempotency key", replay),
    ]
    figures = []
    try:
        await run("warm-up", maker, user_to_user, seconds=2)
        for name, op in scenarios:
            figures.append(await run(name, maker, op, seconds=seconds))
    finally:
        await engine.dispose()
    return figures


def table(figures: list[Figure], baseline: Figure) -> str:
    lines = [
        "| scenario | transfers/s | transactions/s | vs pgbench TPS | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        p99 = "" if f.p99_ms != f.p99_ms else f"{f.p99_ms:.2f}"
        lines.append(
            f"| {f.name} | {f.transfers_per_s:,.0f} | {f.transactions_per_s:,.0f} | "
            f"{f.transfers_per_s / baseline.transfers_per_s:.0%} | {f.p50_ms:.2f} | {p99} | "
            f"{f.errors} |"
        )
    return "\n".join(lines)


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="pull-bench-ledger-"))
    data.chmod(0o755)
    port = devstack.free_port()
    pg, url = devstack.start_postgres(data, port)
    try:
        upgrade(url)
        baseline = pgbench(port, SECONDS)
        figures = asyncio.run(ledger_figures(url, SECONDS))
    finally:
        pg.stop()
        shutil.rmtree(data, ignore_errors=True)
    results = [baseline, *figures]
    host = machine()
    path = write(
        "ledger",
        {
            "machine": host,
            "seconds": SECONDS,
            "concurrency": CONCURRENCY,
            "users": USERS,
            "batch": BATCH,
            "results": results,
        },
    )
    print(table(results, baseline))
    doc = update_docs(results, baseline, host)
    print(f"\nwritten to {path} and {doc}")


def update_docs(results: list[Figure], baseline: Figure, host: dict[str, object]) -> Path:
    """Replace the "## Ledger" section of docs/performance.md, leaving the others alone."""
    doc = ROOT / "docs" / "performance.md"
    section = (
        "## Ledger (`bench/ledger.py`)\n\n"
        "`uv run python -m bench.ledger`: one embedded PostgreSQL (fsync and synchronous_commit "
        f"on) serves pgbench and then the ledger, {host['cpus']} CPUs, Python {host['python']}, "
        f"{host['date']}. Both use {CONCURRENCY} concurrent clients for {SECONDS} s; the "
        "baseline is pgbench's TPC-B-like script at scale 10 (three UPDATEs, one SELECT, one "
        "INSERT per transaction, C client). The ledger runs in-process through the real service "
        "(`pull.ledger.service.transfer` on a SQLAlchemy `AsyncSession`, the way the exchange "
        f"calls it), between {USERS:,} funded users; the Python client shares the 2 cores with "
        "PostgreSQL.\n\n"
        f"{table(results, baseline)}\n\n"
        "A transfer is one round trip: the `ledger_apply` PL/pgSQL function checks the "
        "idempotency key, resolves (and on first use creates) the accounts, locks them in id "
        "order, checks that no user account would go below zero, and writes the transfer, its "
        "entries and the balances (`UPDATE ... FROM unnest(...) RETURNING` feeding the entries' "
        "`balance_after`). One transfer per transaction pays a commit (an fsync) each, like "
        "pgbench; batching many transfers into one transaction (as order placement does: hold, "
        "fills, fees) amortizes the commit, and the remaining cost is mostly Python (SQLAlchemy "
        "session and asyncpg round trip, about 0.4 ms of CPU per transfer, next to about 0.5-0.7 "
        "ms in PostgreSQL for a 3-leg transfer). A system account such as `fee_revenue` is kept "
        "as 16 rows, one per connection shard, so transactions crediting it concurrently do not "
        "queue on one row lock (compare the first two rows). The machine is shared with other "
        "work while this runs, so compare each row with the pgbench row of the same run. "
        "Raw results: `bench/results/ledger.json`.\n"
    )
    text_ = doc.read_text() if doc.exists() else "# Performance\n"
    start = text_.find("## Ledger")
    if start == -1:
        text_ = text_.rstrip("\n") + "\n\n" + section
    else:
        end = text_.find("\n## ", start + 1)
        text_ = text_[:start] + section + ("" if end == -1 else text_[end:])
    doc.write_text(text_)
    return doc


if __name__ == "__main__":
    main()
