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
  (c) the same mix in-process through `service.place_order` (8 tasks, no HTTP): orders per
      second and SQL statements per order.
Baseline in the same run: GET /api/v1/status (one DB read) with the same concurrency.
Results: bench/results/rwa.json.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import statistics
import sys
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import event

from bench.common import machine, pull_api, stack, write
from pull import devstack
from pull.kit.db import make_engine, make_sessionmaker
from pull.kyc import service as kyc
from pull.ledger import service as ledger
from pull.rwa import service as rwa
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
        with pull_api(s, port, DB_POOL_SIZE="20", DB_MAX_OVERFLOW="20", **extra):
            return asyncio.run(_run(s.database_url, port, subscribers, seconds))


async def _run(database_url: str, port: int, subscribers: int, seconds: int) -> dict[str, Any]:
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

        started = time.perf_counter()
        await asyncio.gather(*(subscribe(h) for _, h in users))
        drop_seconds = time.perf_counter() - started
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

        t0 = time.perf_counter()
        await asyncio.gather(*(trader() for _ in range(32)))
        order_seconds = time.perf_counter() - t0

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

        t2 = time.perf_counter()
        await asyncio.gather(*(local_trader() for _ in range(8)))
        inproc_seconds = time.perf_counter() - t2
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

        t1 = time.perf_counter()
        await asyncio.gather(*(reader() for _ in range(32)))
        base_seconds = time.perf_counter() - t1
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
        },
        "secondary_orders": {
            "orders_per_s": round(placed / order_seconds, 1),
            "errors": errors,
            "p50_ms": round(statistics.median(order_lat), 1) if order_lat else None,
            "p99_ms": round(_pct(order_lat, 0.99), 1) if order_lat else None,
        },
        "secondary_orders_in_process": {
            "orders_per_s": round(inproc / inproc_seconds, 1),
            "statements_per_order": round(statements / max(1, inproc + refused[0]), 1),
            "refused": refused[0],
            "p50_ms": round(statistics.median(inproc_lat), 1) if inproc_lat else None,
            "p99_ms": round(_pct(inproc_lat, 0.99), 1) if inproc_lat else None,
        },
        "baseline_status_per_s": round(done / base_seconds, 1),
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    secs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    result = main(n, secs)
    print(write("rwa", result))
    print(result)
