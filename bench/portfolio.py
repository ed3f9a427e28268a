"""Portfolio benchmark: GET /api/v1/portfolio for a customer with 1,000 holdings through a real
`pull api` process, and the end-of-day snapshot of 100,000 customers.

Run: `uv run python -m bench.portfolio [customers] [requests]` (defaults 100000 and 300;
customers 0 skips the snapshot run). With BASELINE_SRC=/path/to/other/checkout/src a second
`pull api` process runs that code (PYTHONPATH) on the same database, and (a) alternates
between the two request by request: a same-run baseline of a change.
Embedded PostgreSQL/Redis/Temporal. The data is bulk-inserted with SQL (a read benchmark's
fixture; the money paths are not measured here): 1,000 open markets with a quoted book and a
trade before today, one customer holding a position in each (one fill per market); then
`customers` customers with cash, a deposit through `bank_clearing`, points for half of them
and a position in one of 100 markets for a third of them.

  (a) `requests` sequential GET /api/v1/portfolio of the 1,000-holding customer: p50/p99 and
      the API process's CPU per request (utime + stime from /proc, a load-independent
      figure); baseline in the same run: sequential GET /api/v1/status (one DB read), with
      its CPU per request;
  (b) the snapshot run: `snapshots.snapshot_batch` (what the workflow's activity calls) over
      all customers in batches of PORTFOLIO_SNAPSHOT_BATCH (2,000), each batch committed;
      baseline in the same run: one INSERT ... SELECT generate_series of as many rows into a
      scratch table (the machine's raw write speed now).
Results: bench/results/portfolio.json. The machine is shared: compare with the baselines.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import statistics
import sys
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import text

from bench.common import machine, pull_api, stack, write
from pull import devstack
from pull.config import get_settings
from pull.exchange import service as exchange
from pull.exchange.schemas import EventCreate, SeriesCreate
from pull.kit.db import make_engine, make_sessionmaker
from pull.portfolio import snapshots


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process (the single-worker `pull api`), from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(customers: int, requests: int) -> dict[str, Any]:
    extra = {
        "RATE_LIMIT_ENABLED": "false",
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST": "1024",
        "API_WORKERS": "1",  # one process, so its CPU per request can be read
    }
    baseline = os.environ.get("BASELINE_SRC")
    with stack() as s:
        port = devstack.free_port()
        with pull_api(s, port, **extra) as proc:
            if not baseline:
                return asyncio.run(
                    _run(s.database_url, [("this", port, proc.pid)], customers, requests)
                )
            base_port = devstack.free_port()
            with pull_api(s, base_port, **extra, PYTHONPATH=baseline) as base:
                apis = [("baseline", base_port, base.pid), ("this", port, proc.pid)]
                return asyncio.run(_run(s.database_url, apis, customers, requests))


MARKETS_SQL = """
INSERT INTO exchange_markets (id, ticker, event_id, event_ticker, title, status, open_time,
    close_time, last_price, yes_bid, yes_ask, volume, open_interest, created_at, updated_at)
SELECT gen_random_uuid(), :prefix || i, :event_id, :event, 'Bench market ' || i, 'open',
       now() - interval '2 days', now() + interval '30 days', 50, 40 + i % 10, 52 + i % 10,
       10, 10, now(), now()
  FROM generate_series(1, :n) AS i
"""

HOLDER_SQL = """
WITH m AS (SELECT id, ticker, row_number() OVER (ORDER BY ticker) AS i
             FROM exchange_markets WHERE ticker LIKE :prefix || '%%')
, t AS (INSERT INTO exchange_trades (market_id, ticker, count, yes_price, taker_side, created_at)
        SELECT id, ticker, 10, 45, 'yes', now() - interval '1 day' FROM m RETURNING id, market_id)
, f AS (INSERT INTO exchange_fills (trade_id, order_id, user_id, market_id, ticker, side, action,
            count, yes_price, is_taker, fee, created_at)
        SELECT t.id, gen_random_uuid(), :u, m.id, m.ticker,
               CASE WHEN m.i % 2 = 0 THEN 'yes' ELSE 'no' END, 'buy', 10, 45, true, 17,
               now() - interval '1 day'
          FROM m JOIN t ON t.market_id = m.id RETURNING market_id, ticker, side)
, c AS (INSERT INTO exchange_candles (market_id, start_ts, price_open, price_high, price_low,
            price_close, volume)
        SELECT id, date_trunc('minute', now() - interval '1 day'), 45, 45, 45, 45, 10 FROM m)
INSERT INTO exchange_positions (user_id, market_id, ticker, position, cost_basis, realized_pnl,
    fees_paid, volume, sell_reserved, updated_at)
SELECT :u, market_id, ticker, CASE WHEN side = 'yes' THEN 10 ELSE -10 END,
       CASE WHEN side = 'yes' THEN 450 ELSE 550 END, 0, 17, 10, 0, now() FROM f
"""

CUSTOMERS_SQL = [
    "INSERT INTO users (id, email, password_hash, referral_code, created_at, updated_at) "
    "SELECT gen_random_uuid(), 'c' || i || '@bench.dev', 'x', lpad(to_hex(i), 8, '0'), now(), "
    "now() FROM generate_series(1, :n) AS i",
    "INSERT INTO ledger_accounts (owner_id, currency, kind, shard, balance, pending_debits, "
    "pending_credits, created_at) SELECT id, 'USD', 'cash', 0, 100000, 0, 0, now() FROM users "
    "WHERE email LIKE 'c%%@bench.dev'",
    "INSERT INTO ledger_accounts (owner_id, currency, kind, shard, balance, pending_debits, "
    "pending_credits, created_at) SELECT id, 'PTS', 'points', 0, 2500, 0, 0, now() FROM users "
    "WHERE email LIKE 'c%%@bench.dev' AND get_byte(uuid_send(id), 0) % 2 = 0",
    "INSERT INTO ledger_accounts (owner_id, currency, kind, shard, balance, pending_debits, "
    "pending_credits, created_at) VALUES (NULL, 'USD', 'bank_clearing', 0, 0, 0, 0, now()) "
    "ON CONFLICT DO NOTHING",
    # one deposit per customer: a transfer, the clearing leg and the customer's leg
    "INSERT INTO ledger_transfers (idempotency_key, kind, content_hash, pending, status, "
    "created_at) SELECT 'bench-dep-' || a.owner_id, 'deposit', 'x', false, 'posted', "
    "now() - interval '2 days' FROM ledger_accounts a WHERE a.kind = 'cash' AND a.currency = "
    "'USD' AND a.owner_id IS NOT NULL",
    "INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after, pending, "
    "created_at) SELECT t.id, a.id, 100000, 100000, false, t.created_at FROM ledger_transfers t "
    "JOIN ledger_accounts a ON t.idempotency_key = 'bench-dep-' || a.owner_id "
    "AND a.kind = 'cash' AND a.currency = 'USD'",
    "INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after, pending, "
    "created_at) SELECT t.id, c.id, -100000, 0, false, t.created_at FROM ledger_transfers t "
    "CROSS JOIN (SELECT id FROM ledger_accounts WHERE kind = 'bank_clearing' AND owner_id IS "
    "NULL LIMIT 1) c WHERE t.idempotency_key LIKE 'bench-dep-%%'",
    # a third hold a position in one of the first 100 markets
    "INSERT INTO exchange_positions (user_id, market_id, ticker, position, cost_basis, "
    "realized_pnl, fees_paid, volume, sell_reserved, updated_at) "
    "SELECT u.id, m.id, m.ticker, 5, 250, 0, 0, 5, 0, now() FROM users u "
    "JOIN (SELECT id, ticker, row_number() OVER (ORDER BY ticker) - 1 AS k "
    "      FROM exchange_markets ORDER BY ticker LIMIT 100) m "
    "  ON m.k = get_byte(uuid_send(u.id), 1) % 100 "
    "WHERE u.email LIKE 'c%%@bench.dev' AND get_byte(uuid_send(u.id), 2) % 3 = 0",
    "ANALYZE",
]


async def _get_phase(
    apis: list[tuple[str, int, int]], headers: dict[str, str], requests: int
) -> dict[str, Any]:
    """`requests` GETs of the portfolio on each API, alternating (which goes first swaps every
    request), then as many of /status; latency and the process's CPU per request."""
    clients = {
        name: httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60)
        for name, port, _ in apis
    }
    out: dict[str, Any] = {}
    try:
        holdings = {}
        for name, c in clients.items():  # the first view of each (a cache's miss)
            holdings[name] = len(
                (await c.get("/api/v1/portfolio", headers=headers)).json()["holdings"]
            )
        lat: dict[str, list[float]] = {name: [] for name in clients}
        base_lat: dict[str, list[float]] = {name: [] for name in clients}
        cpu: dict[str, float] = {}
        base_cpu: dict[str, float] = {}
        load_before = os.getloadavg()
        cpu0 = {name: _cpu_seconds(pid) for name, _, pid in apis}
        for i in range(requests):
            for name, _, _ in apis[:: 1 if i % 2 == 0 else -1]:
                t = time.perf_counter()
                resp = await clients[name].get("/api/v1/portfolio", headers=headers)
                lat[name].append((time.perf_counter() - t) * 1000)
                resp.raise_for_status()
        for name, _, pid in apis:
            cpu[name] = (_cpu_seconds(pid) - cpu0[name]) * 1000 / requests
        cpu0 = {name: _cpu_seconds(pid) for name, _, pid in apis}
        for i in range(requests):
            for name, _, _ in apis[:: 1 if i % 2 == 0 else -1]:
                t = time.perf_counter()
                (await clients[name].get("/api/v1/status")).raise_for_status()
                base_lat[name].append((time.perf_counter() - t) * 1000)
        for name, _, pid in apis:
            base_cpu[name] = (_cpu_seconds(pid) - cpu0[name]) * 1000 / requests
        load_after = os.getloadavg()
    finally:
        for c in clients.values():
            await c.aclose()
    for name, _, _ in apis:
        out[name] = {
            "holdings": holdings[name],
            "requests": requests,
            "p50_ms": round(statistics.median(lat[name]), 1),
            "p99_ms": round(_pct(lat[name], 0.99), 1),
            "max_ms": round(max(lat[name]), 1),
            "api_cpu_ms_per_request": round(cpu[name], 2),
            "baseline_status_p50_ms": round(statistics.median(base_lat[name]), 1),
            "baseline_status_p99_ms": round(_pct(base_lat[name], 0.99), 1),
            "baseline_status_api_cpu_ms_per_request": round(base_cpu[name], 2),
        }
    out["load_average_before"] = [round(x, 2) for x in load_before]
    out["load_average_after"] = [round(x, 2) for x in load_after]
    out["target_p99_ms"] = 50
    return out


async def _run(
    database_url: str, apis: list[tuple[str, int, int]], customers: int, requests: int
) -> dict[str, Any]:
    engine = make_engine(database_url, pool_size=4, max_overflow=0)
    maker = make_sessionmaker(engine)
    base = f"http://127.0.0.1:{apis[0][1]}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        r = await http.post(
            "/api/auth/register",
            json={
                "email": f"holder-{uuid.uuid4().hex[:6]}@bench.dev",
                "password": "Bench-Pass-42x",
            },
        )
        r.raise_for_status()
        holder = uuid.UUID(r.json()["user"]["id"])
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

        t0 = time.perf_counter()
        async with maker() as s, s.begin():
            await exchange.create_series(
                session=s, data=SeriesCreate(ticker="SBENCH", title="Bench", category="Test")
            )
            ev = await exchange.create_event(
                session=s, data=EventCreate(ticker="EBENCH", series_ticker="SBENCH", title="B")
            )
            event_id = (
                await s.execute(
                    text("SELECT id FROM exchange_events WHERE ticker = :t"), {"t": ev.event_ticker}
                )
            ).scalar_one()
            await s.execute(
                text(MARKETS_SQL),
                {"prefix": "BENCH-", "event_id": event_id, "event": "EBENCH", "n": 1000},
            )
            await s.execute(text(HOLDER_SQL), {"prefix": "BENCH-", "u": holder})
            for sql in CUSTOMERS_SQL:
                await s.execute(text(sql), {"n": customers})
        setup_seconds = time.perf_counter() - t0

    get = await _get_phase(apis, headers, requests)
    if not customers:
        await engine.dispose()
        setup = round(setup_seconds, 1)
        return {"machine": machine(), "setup_seconds": setup, "portfolio_get": get}
    settings = get_settings()
    at = dt.datetime.combine(dt.datetime.now(dt.UTC).date(), dt.time(), tzinfo=dt.UTC)
    batch = settings.portfolio_snapshot_batch
    written = users = batches = 0
    after = None
    t0 = time.perf_counter()
    while True:
        async with maker() as s, s.begin():
            res = await snapshots.snapshot_batch(
                session=s,
                kind="eod",
                at=at,
                after=after,
                limit=batch,
                settings=settings,
                broker=None,
            )
        if res.last_user is None:
            break
        written, users, batches, after = (
            written + res.written,
            users + res.users,
            batches + 1,
            res.last_user,
        )
    snapshot_seconds = time.perf_counter() - t0
    async with maker() as s, s.begin():
        await s.execute(text("CREATE TABLE bench_scratch (u uuid, a bigint, b bigint, c bigint)"))
        t0 = time.perf_counter()
        await s.execute(
            text(
                "INSERT INTO bench_scratch SELECT gen_random_uuid(), i, i * 2, i * 3 "
                "FROM generate_series(1, :n) AS i"
            ),
            {"n": users},
        )
        baseline_insert = time.perf_counter() - t0
        rerun = await snapshots.snapshot_batch(
            session=s, kind="eod", at=at, after=None, limit=batch, settings=settings, broker=None
        )
    await engine.dispose()
    return {
        "machine": machine(),
        "note": "shared 2-core machine, other sessions' tests running; compare with baselines",
        "setup_seconds": round(setup_seconds, 1),
        "portfolio_get": get,
        "eod_snapshot": {
            "customers": users,
            "rows_written": written,
            "batches": batches,
            "batch_size": batch,
            "seconds": round(snapshot_seconds, 1),
            "customers_per_s": round(users / snapshot_seconds),
            "rerun_first_batch_written": rerun.written,
            "baseline_plain_insert_seconds": round(baseline_insert, 2),
            "target_seconds": 60,
        },
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    reqs = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    result = main(n, reqs)
    print(write("portfolio", result))
    print(result)
