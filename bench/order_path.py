"""Where an order's time goes, without HTTP: the book command called in-process.

Run: `uv run python -m bench.order_path` (`BENCH_ORDERS`, `BENCH_CONCURRENCY`). An embedded
PostgreSQL (fsync and synchronous_commit on) and Redis; USERS funded, `accredited` users; the
same random limit mix as `bench/orders.py` (buy YES or NO, 1-5 contracts at 45-55 cents, half
good-till-canceled, half immediate-or-cancel) placed through `book_commands.place`, each order its
own transaction. Every SQL statement is counted and timed (wall time from send to result, so
it includes the round trip) by its kind; what is left of an order's time is Python. The
process CPU time per order is `time.process_time()` over the run (this process only: the
PostgreSQL server's CPU is reported by bench/orders.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import event, text

from bench.common import machine, stack, write
from pull.exchange import book_commands
from pull.exchange.schemas import OrderCreate
from pull.identity.schemas import AuthUser
from pull.kit.db import make_engine, make_sessionmaker
from pull.kyc import service as kyc
from pull.ledger import service as ledger

ORDERS = int(os.environ.get("BENCH_ORDERS", "600"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
USERS = 64
MARKETS = 50

KINDS = (
    ("UPDATE exchange_markets SET order_seq", "lock market"),
    ("SELECT * FROM (", "book + position read"),
    ("ledger_apply", "ledger transfer"),
    ("kyc_", "KYC limit"),
    ("WITH ", "placement write"),
    ("idempotency", "idempotency key"),
    ("exchange_orders", "orders read"),
    ("COMMIT", "commit"),
    ("BEGIN", "begin"),
)


def kind_of(statement: str) -> str:
    for needle, name in KINDS:
        if needle in statement[:400]:
            return name
    return statement.split()[0].lower() if statement.split() else "?"


class Probe:
    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self._started: dict[int, tuple[str, float]] = {}

    def attach(self, sync_engine: Any) -> None:
        @event.listens_for(sync_engine, "before_cursor_execute")
        def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            self._started[id(cursor)] = (kind_of(statement), time.perf_counter())

        @event.listens_for(sync_engine, "after_cursor_execute")
        def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            k, t = self._started.pop(id(cursor), ("?", time.perf_counter()))
            self.count[k] += 1
            self.seconds[k] += time.perf_counter() - t

        @event.listens_for(sync_engine, "commit")
        def on_commit(conn: Any) -> None:
            self.count["commit"] += 1


async def setup(maker: Any) -> tuple[list[uuid.UUID], list[str], str]:
    from bench.orders import _market  # (bench.orders imports this module)

    users = [uuid.uuid4() for _ in range(USERS)]
    async with maker() as s, s.begin():
        for i, u in enumerate(users):
            await s.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, referral_code) "
                    "VALUES (:u, :e, 'x', :r)"
                ),
                {"u": u, "e": f"path-{u}@bench.example", "r": f"P{i:07d}"},
            )
    for u in users:
        async with maker() as s, s.begin():
            await kyc.set_tier(session=s, user_id=u, tier="accredited", actor_id=None, note="b")
            await ledger.transfer(
                session=s,
                idempotency_key=f"bench:{u}",
                kind="bench.deposit",
                legs=[
                    ledger.Leg(ledger.system_account("bank_clearing"), -100_000_000),
                    ledger.Leg(ledger.user_account(u, "cash"), 100_000_000),
                ],
            )
    hot = "KXPATH-HOT"
    await _market(maker, hot)
    tickers = [f"KXPATH-M{i:02d}" for i in range(MARKETS)]
    for t in tickers:
        await _market(maker, t)
    return users, tickers, hot


def random_order(ticker: str) -> OrderCreate:
    side = random.choice(["yes", "no"])
    price = random.randint(45, 55)
    return OrderCreate.model_validate(
        {
            "ticker": ticker,
            "side": side,
            "action": "buy",
            "count": random.randint(1, 5),
            f"{side}_price": price,
            "time_in_force": random.choice(["good_till_canceled", "immediate_or_cancel"]),
        }
    )


async def scenario(
    maker: Any, probe: Probe, users: list[uuid.UUID], tickers: list[str]
) -> dict[str, Any]:
    probe.count.clear()
    probe.seconds.clear()
    latencies: list[float] = []
    queue = list(range(ORDERS))

    async def client() -> None:
        while queue:
            queue.pop()
            user = AuthUser(
                id=random.choice(users), email="b", role="user", status="active", session_id=None
            )
            data = random_order(random.choice(tickers))
            t = time.perf_counter()
            async with maker() as s:
                await book_commands.place(session=s, user=user, data=data)
            latencies.append(time.perf_counter() - t)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    latencies.sort()
    n = len(latencies)
    sql_s = sum(probe.seconds.values())
    return {
        "orders": n,
        "orders_per_s": round(n / wall, 1),
        "p50_ms": round(latencies[n // 2] * 1000, 2),
        "p99_ms": round(latencies[int(n * 0.99) - 1] * 1000, 2),
        "process_cpu_ms_per_order": round(cpu / n * 1000, 2),
        "statements_per_order": round(sum(probe.count.values()) / n, 2),
        "by_kind": {
            k: {
                "per_order": round(probe.count[k] / n, 2),
                "ms_per_order": round(probe.seconds[k] / n * 1000, 3),
            }
            for k in sorted(probe.count, key=lambda k: -probe.seconds[k])
        },
        "sql_wall_ms_per_order": round(sql_s / n * 1000, 2),
    }


async def run(database_url: str) -> dict[str, Any]:
    engine = make_engine(database_url, pool_size=CONCURRENCY + 2, max_overflow=0)
    maker = make_sessionmaker(engine)
    probe = Probe()
    probe.attach(engine.sync_engine)
    try:
        users, tickers, hot = await setup(maker)
        await scenario(maker, probe, users, tickers)  # warm-up
        return {
            "hot market": await scenario(maker, probe, users, [hot]),
            f"{MARKETS} markets": await scenario(maker, probe, users, tickers),
        }
    finally:
        await engine.dispose()


def main() -> None:
    os.environ.setdefault("TEMPORAL_ADDRESS", "127.0.0.1:1")  # not needed here
    with stack() as s:
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        out = {
            "machine": machine(),
            "load_average": load,
            "orders": ORDERS,
            "concurrency": CONCURRENCY,
            **asyncio.run(run(s.database_url)),
        }
    path = write("order_path", out)
    print(json.dumps(out, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
