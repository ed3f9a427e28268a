"""Exchange benchmark: order placement through the HTTP API, and settlement of 100k positions.

Run: `uv run python -m bench.orders` (needs wrk; `BENCH_SECONDS`, `BENCH_CONNECTIONS`, and
`BENCH_ORDERS_SCENARIOS=reads,check` etc. to run a subset of orders, reads, check, order_path,
settlement beside the baselines). Everything runs on this machine in one run:
an embedded PostgreSQL/Redis/Temporal, a real `pull api` process (API_WORKERS=2, rate limits
off so the handler itself is measured), and wrk as the load generator. wrk's Lua script
(generated below) signs each request with the bearer token of one of USERS registered users,
picked at random per request, and sends a random limit buy (YES or NO, 1-5 contracts at 45-55
cents, half good-till-canceled, half immediate-or-cancel) so that orders cross, fill, mint
pairs and rest. Scenarios:
  (a) one hot market; (b) 50 markets, a random one per order.
Baselines measured in the same run: a bare Starlette endpoint (wrk), the API's GET
/api/v1/status (one DB read), and pgbench TPC-B at scale 10.
Settlement: a market with 100,000 positions (50,000 YES holders, 50,000 NO holders) is
resolved YES and SettlementWorkflow runs on an in-process Temporal worker; timed from start
to completion.
Results go to bench/results/orders.json and to the "Exchange" section of docs/performance.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import text

from bench import order_path
from bench.common import (
    Result,
    Stack,
    bare_server,
    machine,
    pull_api,
    stack,
    table,
    write,
    wrk,
)
from bench.kalshi import Trader, get_script, order_script
from pull import devstack
from pull.config import Settings
from pull.exchange import service
from pull.exchange.schemas import EventCreate, MarketCreate, SeriesCreate
from pull.identity import signing
from pull.kit.db import make_engine, make_sessionmaker
from pull.kyc import service as kyc
from pull.ledger import service as ledger

SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
USERS = 64
MARKETS = 50
POSITIONS = 100_000
# BENCH_ORDERS_SCENARIOS: a comma-separated subset of these to run (default all); the
# baselines (bare Starlette, pgbench, /api/v1/status) always run. A partial run writes
# bench/results/orders_partial.json, never orders.json.
ALL_SCENARIOS = ("orders", "reads", "check", "order_path", "settlement")
SCENARIOS = tuple(
    x for x in os.environ.get("BENCH_ORDERS_SCENARIOS", ",".join(ALL_SCENARIOS)).split(",") if x
)


def pgbench(port: int, seconds: int) -> Result:
    """TPC-B-like pgbench at scale 10, 16 clients: the database's own write baseline."""
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
        [str(bin_dir / "pgbench"), *common, "-c", "16", "-j", "2", "-T", str(seconds), "pgbench"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))  # type: ignore[union-attr]
    return Result("pgbench TPC-B (scale 10, 16 clients; baseline)", tps, lat, float("nan"), 0, 0)


async def _market(maker: Any, ticker: str) -> None:
    now = dt.datetime.now(dt.UTC)
    async with maker() as s, s.begin():
        try:
            await service.get_series(session=s, ticker="KXBENCH")
        except Exception:
            await service.create_series(
                session=s, data=SeriesCreate(ticker="KXBENCH", title="Bench")
            )
            await service.create_event(
                session=s,
                data=EventCreate(ticker="KXBENCH-1", series_ticker="KXBENCH", title="Bench"),
            )
        await service.create_market(
            session=s,
            data=MarketCreate(
                ticker=ticker,
                event_ticker="KXBENCH-1",
                title=ticker,
                open_time=now - dt.timedelta(minutes=1),
                close_time=now + dt.timedelta(days=1),
            ),
        )
        await service.set_market_status(session=s, ticker=ticker, action="open")


async def setup(database_url: str, api: str) -> tuple[list[str], list[str], str, list[Trader]]:
    """USERS traders (registered over HTTP with an API key each, KYC'd and funded through the
    services), one hot market and MARKETS others."""
    engine = make_engine(database_url, pool_size=4, max_overflow=0)
    maker = make_sessionmaker(engine)
    tokens: list[str] = []
    traders: list[Trader] = []
    try:
        async with httpx.AsyncClient(base_url=api, timeout=60) as c:
            for i in range(USERS):
                r = await c.post(
                    "/api/auth/register",
                    json={
                        "email": f"bench-{i}-{uuid.uuid4().hex[:6]}@example.com",
                        "password": "Correct-Horse-9-Battery",
                    },
                )
                r.raise_for_status()
                body = r.json()
                tokens.append(body["access_token"])
                uid = uuid.UUID(body["user"]["id"])
                trader = Trader(
                    body["access_token"],
                    uid,
                    rsa.generate_private_key(public_exponent=65537, key_size=2048),
                )
                k = await c.post(
                    "/api/v1/api-keys",
                    headers={"Authorization": f"Bearer {trader.token}"},
                    json={
                        "name": "bench",
                        "public_key_pem": signing.public_pem(trader.key.public_key()),
                    },
                )
                k.raise_for_status()
                trader.key_id = k.json()["key_id"]
                traders.append(trader)
                async with maker() as s, s.begin():
                    await kyc.set_tier(
                        session=s, user_id=uid, tier="accredited", actor_id=None, note="bench"
                    )
                    await ledger.transfer(
                        session=s,
                        idempotency_key=f"bench:{uid}",
                        kind="bench.deposit",
                        legs=[
                            ledger.Leg(ledger.system_account("bank_clearing"), -100_000_000),
                            ledger.Leg(ledger.user_account(uid, "cash"), 100_000_000),
                        ],
                    )
        hot = "KXBENCH-HOT"
        await _market(maker, hot)
        tickers = [f"KXBENCH-M{i:02d}" for i in range(MARKETS)]
        for t in tickers:
            await _market(maker, t)
    finally:
        await engine.dispose()
    return tokens, tickers, hot, traders


LUA = """
local tokens = {%(tokens)s}
local tickers = {%(tickers)s}
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
request = function()
  local token = tokens[math.random(#tokens)]
  local ticker = tickers[math.random(#tickers)]
  local side = "yes"
  if math.random(2) == 1 then side = "no" end
  local tif = "good_till_canceled"
  if math.random(2) == 1 then tif = "immediate_or_cancel" end
  local body = string.format(
    '{"ticker":"%%s","side":"%%s","action":"buy","count":%%d,"%%s_price":%%d,"time_in_force":"%%s"}',
    ticker, side, math.random(1, 5), side, math.random(45, 55), tif)
  return wrk.format("POST", "/api/v1/orders",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
"""


def lua(path: Path, tokens: list[str], tickers: list[str]) -> Path:
    path.write_text(
        LUA
        % {
            "tokens": ", ".join(json.dumps(t) for t in tokens),
            "tickers": ", ".join(json.dumps(t) for t in tickers),
        }
    )
    return path


async def committed_orders(database_url: str, tickers: list[str]) -> dict[str, int]:
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as c:
            row = (
                await c.execute(
                    text(
                        "SELECT count(*), count(*) FILTER (WHERE fill_count > 0), "
                        "(SELECT count(*) FROM exchange_trades WHERE ticker = ANY(:t)) "
                        "FROM exchange_orders WHERE ticker = ANY(:t)"
                    ),
                    {"t": tickers},
                )
            ).one()
    finally:
        await engine.dispose()
    return {"orders": row[0], "orders_with_fills": row[1], "trades": row[2]}


async def settlement(s: Stack) -> dict[str, Any]:
    """100k positions resolved YES, settled by SettlementWorkflow on an in-process worker."""
    from temporalio.client import Client

    from pull.kit.runtime import set_worker_runtime
    from pull.worker import build_worker, init_runtime

    settings = Settings(
        DATABASE_URL=s.database_url,
        REDIS_URL=s.redis_url,
        TEMPORAL_ADDRESS=s.temporal_address,
        ENVIRONMENT="test",
    )
    runtime = init_runtime(settings)
    maker = runtime.sessionmaker
    ticker = "KXBENCH-SETTLE"
    try:
        await _market(maker, ticker)
        half = POSITIONS // 2
        async with maker() as ses, ses.begin():
            mid = (await service.get_market(session=ses, ticker=ticker)).ticker
            # holders are real users (ledger accounts belong to users); created in bulk
            await ses.execute(
                text(
                    "CREATE TEMP TABLE bench_holders ON COMMIT DROP AS "
                    "SELECT g, gen_random_uuid() AS u FROM generate_series(1, :n) g"
                ),
                {"n": POSITIONS},
            )
            await ses.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, referral_code) "
                    "SELECT u, u::text || '@bench.example', 'x', 'b' || lpad(to_hex(g), 7, '0') "
                    "FROM bench_holders"
                )
            )
            await ses.execute(
                text(
                    "INSERT INTO exchange_positions (user_id, market_id, ticker, position, "
                    "cost_basis, volume) "
                    "SELECT h.u, m.id, m.ticker, "
                    "CASE WHEN h.g <= :half THEN 2 ELSE -2 END, 100, 2 "
                    "FROM exchange_markets m, bench_holders h WHERE m.ticker = :t"
                ),
                {"half": half, "t": mid},
            )
            await ses.execute(
                text("UPDATE exchange_markets SET open_interest = :oi WHERE ticker = :t"),
                {"oi": 2 * half, "t": ticker},
            )
            await ledger.transfer(
                session=ses,
                idempotency_key="bench:escrow",
                kind="bench.escrow",
                legs=[
                    ledger.Leg(ledger.system_account("bank_clearing"), -100 * 2 * half),
                    ledger.Leg(service.escrow_account(ticker), 100 * 2 * half),
                ],
            )
        async with maker() as ses, ses.begin():
            await service.resolve_market(session=ses, ticker=ticker, result="yes")
        client = await Client.connect(s.temporal_address)
        queue = f"bench-{uuid.uuid4().hex}"
        async with build_worker(client, settings, task_queue=queue):
            started = time.perf_counter()
            out = await client.execute_workflow(
                "SettlementWorkflow",
                {
                    "ticker": ticker,
                    "batch_size": settings.exchange_settlement_batch_size,
                    "parallelism": settings.exchange_settlement_parallelism,
                },
                id=f"settle-{ticker}",
                task_queue=queue,
            )
            elapsed = time.perf_counter() - started
        async with maker() as ses:
            escrow = await ledger.account_balance(
                session=ses, account=service.escrow_account(ticker)
            )
            trial = await ledger.trial_balance(session=ses)
        return {
            "positions": POSITIONS,
            "winners": half,
            "batch_size": settings.exchange_settlement_batch_size,
            "parallelism": settings.exchange_settlement_parallelism,
            "seconds": round(elapsed, 2),
            "positions_per_s": round(POSITIONS / elapsed),
            "workflow": out,
            "escrow_after": escrow,
            "trial_balance_balanced": trial.balanced,
        }
    finally:
        await runtime.redis.aclose()
        await runtime.engine.dispose()
        set_worker_runtime(None)


CHECK_LUA = """
local tokens = {%(tokens)s}
request = function()
  return wrk.format("POST", "/api/auth/check",
    {["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]}, "")
end
"""


class Cpu:
    """CPU seconds of the API process tree and of the PostgreSQL server processes."""

    def __init__(self, api_pid: int, pg_port: int) -> None:
        self.api = psutil.Process(api_pid)
        self.pg = self._postmaster(pg_port)

    @staticmethod
    def _postmaster(port: int) -> psutil.Process | None:
        for c in psutil.net_connections(kind="tcp"):
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
                return psutil.Process(c.pid)
        return None

    @staticmethod
    def _tree(p: psutil.Process | None) -> float:
        if p is None:
            return 0.0
        total = 0.0
        for q in [p, *p.children(recursive=True)]:
            try:
                t = q.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                continue
        return total

    def sample(self) -> tuple[float, float]:
        return self._tree(self.api), self._tree(self.pg)


def measured(
    name: str, url: str, script: Path | None, cpu: Cpu, count: Any = None
) -> tuple[Result, dict[str, Any]]:
    """A wrk run with the API's and PostgreSQL's CPU over it; `count()` counts what committed."""
    before: dict[str, int] = count() if count else {}
    api0, pg0 = cpu.sample()
    t0 = time.perf_counter()
    r = wrk(name, url, seconds=SECONDS, connections=CONNECTIONS, script=script)
    wall = time.perf_counter() - t0
    api1, pg1 = cpu.sample()
    extra: dict[str, Any] = {
        "wall_s": round(wall, 1),
        "api_core_s": round(api1 - api0, 2),
        "pg_core_s": round(pg1 - pg0, 2),
    }
    if count:
        after = count()
        done = {k: after[k] - before[k] for k in after}
        extra["committed"] = done
        n = max(done["orders"], 1)
        extra["api_core_ms_per_order"] = round((api1 - api0) / n * 1000, 2)
        extra["pg_core_ms_per_order"] = round((pg1 - pg0) / n * 1000, 2)
        extra["committed_per_s"] = round(done["orders"] / wall, 1)
    return r, extra


def orders_scenarios(
    url: str,
    tmp: Path,
    tokens: list[str],
    tickers: list[str],
    hot: str,
    traders: list[Trader],
    cpu: Cpu,
    s: Stack,
    details: dict[str, Any],
) -> list[Result]:
    """Order placement: one hot market, 50 markets, the Trade API (RSA-PSS signed)."""
    hot_script = lua(tmp / "hot.lua", tokens, [hot])
    multi_script = lua(tmp / "multi.lua", tokens, tickers)
    wrk("warm-up", f"{url}/api/v1/orders", seconds=3, script=hot_script)
    one, details["hot"] = measured(
        "POST /api/v1/orders, one hot market",
        f"{url}/api/v1/orders",
        hot_script,
        cpu,
        lambda: asyncio.run(committed_orders(s.database_url, [hot])),
    )
    many, details["markets"] = measured(
        f"POST /api/v1/orders, {MARKETS} markets",
        f"{url}/api/v1/orders",
        multi_script,
        cpu,
        lambda: asyncio.run(committed_orders(s.database_url, tickers)),
    )
    trade_path = "/trade-api/v2/portfolio/orders"
    signed = [{**t.signed("POST", trade_path), "Content-Type": "application/json"} for t in traders]
    trade, details["trade_api"] = measured(
        f"POST {trade_path} (RSA-PSS signed), {MARKETS} markets",
        url + trade_path,
        order_script(tmp / "trade.lua", trade_path, signed, tickers),
        cpu,
        lambda: asyncio.run(committed_orders(s.database_url, tickers)),
    )
    return [one, many, trade]


def read_scenarios(
    url: str, tmp: Path, tokens: list[str], tickers: list[str], cpu: Cpu, details: dict[str, Any]
) -> list[Result]:
    """The market and order-book reads of the app API (signed in) and the Trade API (public)."""
    t0 = tickers[0]
    reads: list[Result] = []
    for name, path in (
        ("GET /api/v1/markets/{ticker}", f"/api/v1/markets/{t0}"),
        ("GET /api/v1/markets/{ticker}/orderbook", f"/api/v1/markets/{t0}/orderbook"),
        ("GET /trade-api/v2/markets/{ticker}", f"/trade-api/v2/markets/{t0}"),
        (
            "GET /trade-api/v2/markets/{ticker}/orderbook",
            f"/trade-api/v2/markets/{t0}/orderbook",
        ),
    ):
        script: Path | None = None  # the Trade API's market data is public
        if path.startswith("/api/"):  # the app API's needs a signed-in user
            script = get_script(
                tmp / f"get{len(reads)}.lua", {"Authorization": f"Bearer {tokens[0]}"}
            )
        r, details[name] = measured(name, url + path, script, cpu)
        reads.append(r)
    return reads


def main() -> None:
    unknown = set(SCENARIOS) - set(ALL_SCENARIOS)
    if unknown:
        raise SystemExit(
            f"BENCH_ORDERS_SCENARIOS: unknown {sorted(unknown)}; known {ALL_SCENARIOS}"
        )
    name = "orders" if set(SCENARIOS) == set(ALL_SCENARIOS) else "orders_partial"
    results: list[Result] = []
    details: dict[str, Any] = {}
    with open("/proc/loadavg") as f:
        load_before = f.read().split()[:3]
    with stack() as s:
        tmp = Path(tempfile.mkdtemp(prefix="bench-orders-"))
        base_port, api_port = devstack.free_port(), devstack.free_port()
        with bare_server(base_port):
            wrk("warm-up", f"http://127.0.0.1:{base_port}/", seconds=2)
            baseline = wrk(
                "bare Starlette endpoint (baseline)",
                f"http://127.0.0.1:{base_port}/",
                seconds=SECONDS,
                connections=CONNECTIONS,
            )
        assert s.postgres_port is not None
        pg = pgbench(s.postgres_port, SECONDS)
        with pull_api(s, api_port, RATE_LIMIT_ENABLED="false", API_WORKERS="2") as proc:
            cpu = Cpu(proc.pid, s.postgres_port)
            url = f"http://127.0.0.1:{api_port}"
            tokens, tickers, hot, traders = asyncio.run(setup(s.database_url, url))
            wrk("warm-up", f"{url}/api/v1/status", seconds=2)
            status = wrk(
                "GET /api/v1/status (one DB read)",
                f"{url}/api/v1/status",
                seconds=SECONDS,
                connections=CONNECTIONS,
            )
            orders_run: list[Result] = []
            if "orders" in SCENARIOS:
                orders_run = orders_scenarios(
                    url, tmp, tokens, tickers, hot, traders, cpu, s, details
                )
            reads: list[Result] = []
            if "reads" in SCENARIOS:
                reads = read_scenarios(url, tmp, tokens, tickers, cpu, details)
            checks: list[Result] = []
            if "check" in SCENARIOS:
                check_script = tmp / "check.lua"
                check_script.write_text(
                    CHECK_LUA % {"tokens": ", ".join(json.dumps(t) for t in tokens)}
                )
                check, details["auth_check"] = measured(
                    "POST /api/auth/check (random signed-in users)",
                    f"{url}/api/auth/check",
                    check_script,
                    cpu,
                )
                checks.append(check)
        results = [baseline, pg, status, *orders_run, *reads, *checks]
        payload: dict[str, Any] = {
            "machine": machine(),
            "load_average_before": load_before,
            "seconds": SECONDS,
            "connections": CONNECTIONS,
            "users": USERS,
            "scenarios": list(SCENARIOS),
            "results": results,
            "details": details,
        }
        write(name, payload)
        print(table(results, baseline))
        print(json.dumps(details, indent=2), flush=True)
        if "order_path" in SCENARIOS:
            payload["order_path"] = asyncio.run(order_path.run(s.database_url))
            print(json.dumps(payload["order_path"], indent=2), flush=True)
        if "settlement" in SCENARIOS:
            payload["settlement"] = asyncio.run(settlement(s))
            print(json.dumps(payload["settlement"], indent=2))
        with open("/proc/loadavg") as f:
            payload["load_average_after"] = f.read().split()[:3]
        written = write(name, payload)
    print(f"\nwritten to {written}", file=sys.stderr)


if __name__ == "__main__":
    main()
