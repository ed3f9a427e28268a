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
RWA_ORDER_BATCH_MAX (default 32; 1 = one order per transaction, the old path). The HTTP scenarios
use a raw HTTP/1.1 client on pre-opened connections (BENCH_RWA_CLIENT=httpx: httpx); the hot
drop's subscribers each read the offering first (their sessions in the auth caches) and
are released together; the client's own CPU per request is reported beside the API's.
Results: bench/results/rwa.json.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
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

CLIENT = os.environ.get("BENCH_RWA_CLIENT", "raw")


class _Raw:
    """Pre-opened HTTP/1.1 connections, requests written as bytes and answers read by
    Content-Length (as bench/rewards.py's race client): tens of microseconds of client CPU
    per request. httpx with 1,000 connections costs milliseconds per request in its pool, on
    the same 2 cores as the server (BENCH_RWA_CLIENT=httpx runs it)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open(self, n: int) -> None:
        sem = asyncio.Semaphore(64)

        async def one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            async with sem:
                return await asyncio.open_connection("127.0.0.1", self.port)

        self.conns = list(await asyncio.gather(*(one() for _ in range(n))))

    def request(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> bytes:
        raw = b"" if body is None else json.dumps(body).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n"
        return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n").encode() + raw

    async def send(self, i: int, wire: bytes) -> int:
        reader, writer = self.conns[i]
        writer.write(wire)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        return int(head.split(b" ", 2)[1])

    def close(self) -> None:
        for _, writer in self.conns:
            writer.close()


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
        # Every subscriber's session in the API's auth caches, as for users in the app when
        # the drop opens (each reads the offering first).
        sem = asyncio.Semaphore(64)

        async def look(headers: dict[str, str]) -> None:
            async with sem:
                r = await http.get(f"/api/v1/rwa/offerings/{drop}", headers=headers)
                r.raise_for_status()

        await asyncio.gather(*(look(h) for _, h in users))
        raw = _Raw(port)
        if CLIENT == "raw":
            await raw.open(len(users))
        wire = [
            raw.request(
                "POST",
                f"/api/v1/rwa/offerings/{drop}/subscribe",
                {**h, "Idempotency-Key": uuid.uuid4().hex},
                {"shares": 1},
            )
            for _, h in users
        ]
        gate = asyncio.Event()

        async def subscribe(i: int, headers: dict[str, str]) -> None:
            await gate.wait()
            t = time.perf_counter()
            code: int | str
            if CLIENT == "raw":
                code = await raw.send(i, wire[i])
            else:
                try:
                    r = await http.post(
                        f"/api/v1/rwa/offerings/{drop}/subscribe",
                        json={"shares": 1},
                        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                    )
                    code = r.status_code
                except httpx.TimeoutException:
                    code = "client timeout"
            latencies.append((time.perf_counter() - t) * 1000)
            codes[code] = codes.get(code, 0) + 1

        tasks = [asyncio.create_task(subscribe(i, h)) for i, (_, h) in enumerate(users)]
        await asyncio.sleep(0.2)
        _phase("hot drop")
        drop_cpu0, drop_self0 = cpu.sample(), _self_cpu()
        started = time.perf_counter()
        gate.set()
        await asyncio.gather(*tasks)
        drop_seconds = time.perf_counter() - started
        drop_cpu1, drop_self = cpu.sample(), _self_cpu() - drop_self0
        raw.close()
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

        traders = 32
        raw = _Raw(port)
        if CLIENT == "raw":
            await raw.open(traders)

        async def trader(i: int) -> None:
            nonlocal placed, errors
            rng = random.Random()
            while time.perf_counter() < deadline:
                _, headers = rng.choice(holders)
                body = {
                    "asset_id": str(traded),
                    "side": rng.choice(["buy", "sell"]),
                    "price_cents": rng.randint(95, 105),
                    "quantity": rng.randint(1, 3),
                    "time_in_force": rng.choice(["gtc", "ioc"]),
                }
                headers = {**headers, "Idempotency-Key": uuid.uuid4().hex}
                t = time.perf_counter()
                if CLIENT == "raw":
                    code = await raw.send(
                        i, raw.request("POST", "/api/v1/rwa/orders", headers, body)
                    )
                else:
                    code = (
                        await http.post("/api/v1/rwa/orders", json=body, headers=headers)
                    ).status_code
                order_lat.append((time.perf_counter() - t) * 1000)
                if code == 201:
                    placed += 1
                else:
                    errors += 1

        _phase("secondary orders over HTTP")
        order_cpu0, order_self0 = cpu.sample(), _self_cpu()
        t0 = time.perf_counter()
        await asyncio.gather(*(trader(i) for i in range(traders)))
        order_seconds = time.perf_counter() - t0
        order_cpu1, order_self = cpu.sample(), _self_cpu() - order_self0

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

        status_wire = raw.request("GET", "/api/v1/status", {})

        async def reader(i: int) -> None:
            nonlocal done
            while time.perf_counter() < base_deadline:
                if CLIENT == "raw":
                    await raw.send(i, status_wire)
                else:
                    await http.get("/api/v1/status")
                done += 1

        base_cpu0, base_self0 = cpu.sample(), _self_cpu()
        t1 = time.perf_counter()
        await asyncio.gather(*(reader(i) for i in range(traders)))
        base_seconds = time.perf_counter() - t1
        base_cpu1, base_self = cpu.sample(), _self_cpu() - base_self0
        raw.close()
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
            "client_cpu_ms_per_request": _per(drop_self, subscribers),
        },
        "secondary_orders": {
            "orders_per_s": round(placed / order_seconds, 1),
            "errors": errors,
            "p50_ms": round(statistics.median(order_lat), 1) if order_lat else None,
            "p99_ms": round(_pct(order_lat, 0.99), 1) if order_lat else None,
            "api_cpu_ms_per_order": _per(order_cpu1[0] - order_cpu0[0], placed + errors),
            "pg_cpu_ms_per_order": _per(order_cpu1[1] - order_cpu0[1], placed + errors),
            "client_cpu_ms_per_order": _per(order_self, placed + errors),
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
        "baseline_status_client_cpu_ms": _per(base_self, done),
        "client": CLIENT,
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    secs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    result = main(n, secs)
    print(write("rwa", result))
    print(result)
