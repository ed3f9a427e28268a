"""RWA benchmark: a hot drop (concurrent subscriptions to one offering) and secondary orders on
one asset, through a real `pull api` process over HTTP.

Run: `uv run python -m bench.rwa [subscribers] [seconds]` (defaults 1000 and 10). An embedded
PostgreSQL/Redis/Temporal, `pull api` with rate limits off (the handler is measured). Users are
registered over HTTP; their KYC tier, cash and the assets are set up in-process through the
services (admin routes want 2FA). Scenarios:
  (a) `subscribers` users each POST one subscription of 1 share at once to an offering of
      0.8 x subscribers shares: latency p50/p99, and the offering never oversubscribed;
  (b) for `seconds`, 32 concurrent clients place random limit orders (buy or sell 1-3 shares
      at 95-105 cents) on one trading asset: orders per second;
  (c) the same mix in-process through `service.place_order` (8 tasks, no HTTP, one order per
      transaction): orders per second and SQL statements per order;
  (d) the same mix in-process through the group-commit batcher the HTTP route uses
      (`OrderBatcher`, 32 tasks): orders per second and statements per order.
Baseline in the same run: GET /api/v1/status (one DB read) with the same concurrency.
CPU per operation beside every rate (load-independent): the API process's and PostgreSQL's
CPU seconds over each HTTP scenario (psutil, as bench/orders.py), this process's own CPU
(getrusage) and PostgreSQL's over the in-process ones. `BENCH_RWA_BATCH` sets the API's
RWA_ORDER_BATCH_MAX (default 32; 1 = one order per transaction, the old path).
Results: bench/results/rwa.json.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import resource
import statistics
import sys
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import event

from bench.common import machine, pull_api, stack, write
from bench.orders import Cpu
from pull import devstack
from pull.kit.db import make_engine, make_sessionmaker
from pull.kyc import service as kyc
from pull.ledger import service as ledger
from pull.rwa import service as rwa
from pull.rwa.order_batcher import OrderBatcher, Pending
from pull.rwa.providers.sandbox import PsaSandbox
from pull.rwa.schemas import AssetCreate, OfferingCreate


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _register(http: httpx.AsyncClient, n: int) -> list[tuple[uuid.UUID, dict[str, str]]]:
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> tuple[uuid.UUID, dict[str, str]]:
        async with sem:
            r = await http.post(
                "/api/auth/register",
                json={
                    "email": f"b{i}-{uuid.uuid4().hex[:6]}@bench.dev",
                    "password": "Bench-Pass-42x",
                },
                headers={"X-Forwarded-For": f"10.1.{i // 250}.{i % 250}"},
            )
            r.raise_for_status()
            body = r.json()
            return uuid.UUID(body["user"]["id"]), {
                "Authorization": f"Bearer {body['access_token']}"
            }

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def main(subscribers: int, seconds: int) -> dict[str, Any]:
    """The stack and the API process start outside the event loop (migrations run their own)."""
    with stack() as s:
        port = devstack.free_port()
        extra = {
            "RATE_LIMIT_ENABLED": "false",
            "ARGON2_TIME_COST": "1",
            "ARGON2_MEMORY_COST": "1024",
        }
        extra["RWA_ORDER_BATCH_MAX"] = os.environ.get("BENCH_RWA_BATCH", "32")
        with pull_api(s, port, DB_POOL_SIZE="20", DB_MAX_OVERFLOW="20", **extra) as proc:
            cpu = Cpu(proc.pid, s.postgres_port or 0)
            result = asyncio.run(_run(s.database_url, port, subscribers, seconds, cpu))
            result["api_order_batch_max"] = int(extra["RWA_ORDER_BATCH_MAX"])
            result["load_average"] = [round(x, 2) for x in os.getloadavg()]
            return result


def _phase(name: str) -> None:
    """A marker on stderr (a profiler outside can start and stop on it)."""
    print(f"bench.rwa phase: {name}", file=sys.stderr, flush=True)


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _per(core_s: float, n: int) -> float | None:
    """Milliseconds of CPU per operation."""
    return round(1000 * core_s / n, 2) if n else None


async def _run(
    database_url: str, port: int, subscribers: int, seconds: int, cpu: Cpu
) -> dict[str, Any]:
    engine = make_engine(database_url, pool_size=4, max_overflow=0)
    maker = make_sessionmaker(engine)
    limits = httpx.Limits(max_connections=subscribers, max_keepalive_connections=subscribers)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=300, limits=limits
    ) as http:
        users = await _register(http, subscribers)
        admin, reviewer, consignor = users[0][0], users[1][0], users[2][0]
        async with maker() as db, db.begin():
            for uid, _ in users:
                await kyc.set_tier(session=db, user_id=uid, tier="basic", actor_id=None, note=None)
                await ledger.transfer(
                    session=db,
                    idempotency_key=f"bench:fund:{uid}",
                    kind="deposit_settled",
                    legs=[
                        ledger.Leg(ledger.system_account("bank_clearing"), -1_000_000),
                        ledger.Leg(ledger.user_account(uid, "cash"), 1_000_000),
                    ],
                )
        now = dt.datetime.now(dt.UTC)

        async def asset(cert: str, shares: int) -> tuple[uuid.UUID, uuid.UUID]:
            async with maker() as db, db.begin():
                made = await rwa.create_asset(
                    session=db,
                    graders={"PSA": PsaSandbox()},
                    actor_id=admin,
                    data=AssetCreate(
                        title=f"bench {cert}",
                        category="card",
                        cert_number=cert,
                        grade="10",
                        custodian="vault",
                        insured_value_cents=1,
                        consignor_id=consignor,
                    ),
                )
                offering = await rwa.create_offering(
                    session=db,
                    actor_id=admin,
                    asset_id=made.id,
                    data=OfferingCreate(
                        total_shares=shares,
                        price_cents=100,
                        opens_at=now,
                        closes_at=now + dt.timedelta(hours=1),
                        min_raise_cents=1,
                        max_per_investor_bps=10_000,
                    ),
                )
                await rwa.open_offering(session=db, actor_id=reviewer, offering_id=offering.id)
            return made.id, offering.id

        # (a) the hot drop
        total = subscribers * 8 // 10
        _, drop = await asset("10000010", total)
        latencies: list[float] = []
        codes: dict[int | str, int] = {}

        async def subscribe(headers: dict[str, str]) -> None:
            t = time.perf_counter()
            try:
                r = await http.post(
                    f"/api/v1/rwa/offerings/{drop}/subscribe",
                    json={"shares": 1},
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )
                code: int | str = r.status_code
            except httpx.TimeoutException:
                code = "client timeout"
            latencies.append((time.perf_counter() - t) * 1000)
            codes[code] = codes.get(code, 0) + 1

        _phase("hot drop")
        drop_cpu0 = cpu.sample()
        started = time.perf_counter()
        await asyncio.gather(*(subscribe(h) for _, h in users))
        drop_seconds = time.perf_counter() - started
        drop_cpu1 = cpu.sample()
        state = (await http.get(f"/api/v1/rwa/offerings/{drop}", headers=users[0][1])).json()

        # (b) secondary orders on one asset (holders: the first 200 users, 50 shares each)
        holders = users[:200]
        traded, book = await asset("10000020", 50 * len(holders))
        for uid, _ in holders:
            async with maker() as db, db.begin():
                await rwa.subscribe(session=db, user_id=uid, offering_id=book, shares=50)
        async with maker() as db, db.begin():
            await rwa.close_offering(session=db, offering_id=book)
            await rwa.settle_subscriptions(session=db, offering_id=book, limit=1000)
            await rwa.finalize_offering(session=db, offering_id=book, lockup_seconds=0)
            await rwa.start_trading(session=db, asset_id=traded)
        placed = 0
        errors = 0
        order_lat: list[float] = []
        deadline = time.perf_counter() + seconds

        async def trader() -> None:
            nonlocal placed, errors
            rng = random.Random()
            while time.perf_counter() < deadline:
                _, headers = rng.choice(holders)
                t = time.perf_counter()
                r = await http.post(
                    "/api/v1/rwa/orders",
                    json={
                        "asset_id": str(traded),
                        "side": rng.choice(["buy", "sell"]),
                        "price_cents": rng.randint(95, 105),
                        "quantity": rng.randint(1, 3),
                        "time_in_force": rng.choice(["gtc", "ioc"]),
                    },
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )
                order_lat.append((time.perf_counter() - t) * 1000)
                if r.status_code == 201:
                    placed += 1
                else:
                    errors += 1

        _phase("secondary orders over HTTP")
        order_cpu0 = cpu.sample()
        t0 = time.perf_counter()
        await asyncio.gather(*(trader() for _ in range(32)))
        order_seconds = time.perf_counter() - t0
        order_cpu1 = cpu.sample()

        _phase("in-process")
        # (c) the same order mix in-process (no HTTP, no auth): the service's own rate, and
        # the SQL statements per order, counted on the engine
        statements = 0

        def count(*_: Any) -> None:
            nonlocal statements
            statements += 1

        inproc = 0
        refused = [0]
        inproc_lat: list[float] = []
        engine2 = make_engine(database_url, pool_size=8, max_overflow=0)
        maker2 = make_sessionmaker(engine2)
        event.listen(engine2.sync_engine, "before_cursor_execute", count)
        in_deadline = time.perf_counter() + min(seconds, 8)

        async def local_trader() -> None:
            nonlocal inproc
            rng = random.Random()
            while time.perf_counter() < in_deadline:
                uid, _ = rng.choice(holders)
                t = time.perf_counter()
                try:
                    async with maker2() as db, db.begin():
                        await rwa.place_order(
                            session=db,
                            user_id=uid,
                            asset_id=traded,
                            side=rng.choice(["buy", "sell"]),
                            price_cents=rng.randint(95, 105),
                            quantity=rng.randint(1, 3),
                            time_in_force=rng.choice(["gtc", "ioc"]),
                        )
                except Exception:  # refusals (not enough shares) are part of the mix
                    refused[0] += 1
                    continue
                inproc += 1
                inproc_lat.append((time.perf_counter() - t) * 1000)

        self0, pg0 = _self_cpu(), cpu.sample()[1]
        t2 = time.perf_counter()
        await asyncio.gather(*(local_trader() for _ in range(8)))
        inproc_seconds = time.perf_counter() - t2
        inproc_self, inproc_pg = _self_cpu() - self0, cpu.sample()[1] - pg0
        inproc_statements = statements

        # (d) the same mix in-process through the HTTP route's group-commit batcher
        statements = 0
        batched = 0
        batch_refused = 0
        batch_lat: list[float] = []
        batcher = OrderBatcher(maker2, max_batch=32, trading_hours="")
        batch_deadline = time.perf_counter() + min(seconds, 8)

        async def batch_trader() -> None:
            nonlocal batched, batch_refused
            rng = random.Random()
            while time.perf_counter() < batch_deadline:
                uid, _ = rng.choice(holders)
                t = time.perf_counter()
                stored = await batcher.place(
                    traded,
                    Pending(
                        rwa.OrderSpec(
                            uid,
                            rng.choice(["buy", "sell"]),
                            rng.randint(95, 105),
                            rng.randint(1, 3),
                            rng.choice(["gtc", "ioc"]),
                        ),
                        uuid.uuid4().hex,
                        {},
                    ),
                )
                if stored is None:  # the batch was refused: the route would place it alone
                    batch_refused += 1
                    continue
                batched += 1
                batch_lat.append((time.perf_counter() - t) * 1000)

        self0, pg0 = _self_cpu(), cpu.sample()[1]
        t3 = time.perf_counter()
        await asyncio.gather(*(batch_trader() for _ in range(32)))
        batch_seconds = time.perf_counter() - t3
        batch_self, batch_pg = _self_cpu() - self0, cpu.sample()[1] - pg0
        event.remove(engine2.sync_engine, "before_cursor_execute", count)
        await engine2.dispose()

        # baseline: GET /api/v1/status at the same concurrency
        done = 0
        base_deadline = time.perf_counter() + min(seconds, 5)

        async def reader() -> None:
            nonlocal done
            while time.perf_counter() < base_deadline:
                await http.get("/api/v1/status")
                done += 1

        base_cpu0 = cpu.sample()
        t1 = time.perf_counter()
        await asyncio.gather(*(reader() for _ in range(32)))
        base_seconds = time.perf_counter() - t1
        base_cpu1 = cpu.sample()
    await engine.dispose()
    return {
        "machine": machine(),
        "hot_drop": {
            "subscribers": subscribers,
            "shares_offered": total,
            "shares_subscribed": state["shares_subscribed"],
            "oversubscribed": state["shares_subscribed"] > total,
            "status_codes": codes,
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(_pct(latencies, 0.99), 1),
            "seconds": round(drop_seconds, 2),
            "api_cpu_ms_per_request": _per(drop_cpu1[0] - drop_cpu0[0], subscribers),
            "pg_cpu_ms_per_request": _per(drop_cpu1[1] - drop_cpu0[1], subscribers),
        },
        "secondary_orders": {
            "orders_per_s": round(placed / order_seconds, 1),
            "errors": errors,
            "p50_ms": round(statistics.median(order_lat), 1) if order_lat else None,
            "p99_ms": round(_pct(order_lat, 0.99), 1) if order_lat else None,
            "api_cpu_ms_per_order": _per(order_cpu1[0] - order_cpu0[0], placed + errors),
            "pg_cpu_ms_per_order": _per(order_cpu1[1] - order_cpu0[1], placed + errors),
        },
        "secondary_orders_in_process": {
            "orders_per_s": round(inproc / inproc_seconds, 1),
            "statements_per_order": round(inproc_statements / max(1, inproc + refused[0]), 1),
            "cpu_ms_per_order": _per(inproc_self, inproc + refused[0]),
            "pg_cpu_ms_per_order": _per(inproc_pg, inproc + refused[0]),
            "refused": refused[0],
            "p50_ms": round(statistics.median(inproc_lat), 1) if inproc_lat else None,
            "p99_ms": round(_pct(inproc_lat, 0.99), 1) if inproc_lat else None,
        },
        "secondary_orders_in_process_batched": {
            "orders_per_s": round(batched / batch_seconds, 1),
            "statements_per_order": round(statements / max(1, batched + batch_refused), 2),
            "refused_batches_orders": batch_refused,
            "cpu_ms_per_order": _per(batch_self, batched + batch_refused),
            "pg_cpu_ms_per_order": _per(batch_pg, batched + batch_refused),
            "p50_ms": round(statistics.median(batch_lat), 1) if batch_lat else None,
            "p99_ms": round(_pct(batch_lat, 0.99), 1) if batch_lat else None,
        },
        "baseline_status_per_s": round(done / base_seconds, 1),
        "baseline_status_api_cpu_ms": _per(base_cpu1[0] - base_cpu0[0], done),
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    secs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    result = main(n, secs)
    print(write("rwa", result))
    print(result)
