"""Brokerage benchmark: orders submitted through the sandbox broker per second, and trade
executions applied by the event consumer per second, next to ledger holds per second (the
cheapest money-moving call an order makes) measured in the same run.

Run: `uv run python -m bench.brokerage`. One embedded PostgreSQL. Submission runs the order
path the API runs (`orders.prepare`, commit, `orders.send`, commit: validation, KYC limit,
ledger hold, funding journal at the broker, the broker's order and its fill) with CONCURRENCY
tasks for SECONDS; then the consumer drains the broker's events (`events.consume`, a batch of
the events received per transaction with the cursor). Same-run baseline for the consumer: a
first round of orders drained with batches of one event (the consumer before batching).
Results go to bench/results/brokerage.json.
Targets (issue 17): >= 300 orders/s, >= 2,000 executions/s.

Then BENCH_BROKERAGE_BREAKDOWN orders (default 100) one at a time split this process's CPU per
order into PULL's intake, the sandbox's journal and order calls, and the rest of the send.
Load-independent figures next to the rates: statements per operation (counted on the engine),
this process's CPU per operation (`resource.getrusage`) and PostgreSQL's (the CPU of the
server's processes, from /proc: approximate, a backend that exits takes its CPU with it), and
the load average at the start and end of the run.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from bench.common import machine, stack, write
from pull.brokerage import accounts, events, orders
from pull.brokerage.providers.sandbox import SandboxBroker
from pull.brokerage.schemas import OrderCreate
from pull.config import Settings
from pull.kit.crypto import FieldCipher
from pull.kit.db import make_engine, make_sessionmaker, session_scope
from pull.kyc import service as kyc
from pull.kyc.models import KycApplication
from pull.ledger import service as ledger

SECONDS = float(os.environ.get("BENCH_BROKERAGE_SECONDS", "10"))
CONCURRENCY = 8
USERS = 64


async def _setup(maker: Any, broker: SandboxBroker, settings: Settings) -> list[uuid.UUID]:
    users = [uuid.uuid4() for _ in range(USERS)]
    cipher = FieldCipher(settings.field_encryption_keys)
    async with maker() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO users (id, email, password_hash, referral_code) "
                "SELECT u, u::text || '@bench.example', 'x', substr(md5(u::text), 1, 8) "
                "FROM unnest(CAST(:ids AS uuid[])) AS u"
            ),
            {"ids": users},
        )
        for u in users:
            await kyc.set_tier(session=s, user_id=u, tier="accredited", actor_id=None, note="b")
            s.add(
                KycApplication(
                    user_id=u,
                    target_tier="accredited",
                    status="approved",
                    steps={},
                    first_name_enc=cipher.encrypt("Bench"),
                    last_name_enc=cipher.encrypt("User"),
                    dob_enc=cipher.encrypt("1990-01-01"),
                    address_enc=cipher.encrypt(
                        '{"line1": "1 A St", "city": "NYC", "state": "NY", "postal_code": "10001"}'
                    ),
                    phone_enc=cipher.encrypt("+15555550100"),
                )
            )
            await ledger.transfer(
                session=s,
                idempotency_key=f"bench-fund:{u}",
                kind="deposit_settled",
                legs=[
                    ledger.Leg(ledger.system_account("bank_clearing"), -(10**10)),
                    ledger.Leg(ledger.user_account(u, "cash"), 10**10),
                ],
            )
    for u in users:
        async with session_scope(maker) as s:
            await accounts.open_account(
                session=s, broker=broker, cipher=cipher, user_id=u, ip_address="127.0.0.1"
            )
    return users


async def _holds(
    maker: Any, users: list[uuid.UUID], seconds: float, meter: Meter
) -> dict[str, float]:
    before = meter.snap()
    lat: list[float] = []
    stop = time.monotonic() + seconds

    async def run(i: int) -> None:
        n = 0
        while time.monotonic() < stop:
            t = time.perf_counter()
            async with session_scope(maker) as s:
                await ledger.transfer(
                    session=s,
                    idempotency_key=f"bench-hold:{i}:{n}",
                    kind="bench.hold",
                    legs=[
                        ledger.Leg(ledger.user_account(users[i % len(users)], "cash"), -100),
                        ledger.Leg(ledger.system_account("bench_holds"), 100),
                    ],
                    pending=True,
                )
            lat.append(time.perf_counter() - t)
            n += 1

    t0 = time.monotonic()
    await asyncio.gather(*(run(i) for i in range(CONCURRENCY)))
    return _figure(len(lat), time.monotonic() - t0, lat) | meter.per(before, len(lat))


class Meter:
    """Statements on the engine, this process's CPU and the PostgreSQL server's CPU."""

    def __init__(self, engine: Any, postmaster: int | None) -> None:
        self.statements = 0
        self.postmaster = postmaster

        def count(*_: Any) -> None:
            self.statements += 1

        event.listen(engine.sync_engine, "before_cursor_execute", count)

    def _pg_cpu(self) -> float:
        if self.postmaster is None:
            return 0.0
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(pid) == self.postmaster or int(fields[1]) == self.postmaster:
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def snap(self) -> tuple[int, float, float]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return self.statements, ru.ru_utime + ru.ru_stime, self._pg_cpu()

    def per(self, before: tuple[int, float, float], ops: int) -> dict[str, float]:
        st, cpu, pg = self.snap()
        n = max(ops, 1)
        return {
            "statements_per_op": round((st - before[0]) / n, 2),
            "process_cpu_ms_per_op": round((cpu - before[1]) / n * 1000, 3),
            "postgres_cpu_ms_per_op": round((pg - before[2]) / n * 1000, 3),
        }


async def _data_directory(maker: Any) -> str:
    async with maker() as s:
        return str(await s.scalar(text("SHOW data_directory")))


def _postmaster(data_directory: str) -> int | None:
    try:
        return int(Path(data_directory, "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def _figure(count: int, elapsed: float, lat: list[float]) -> dict[str, float]:
    lat.sort()
    return {
        "count": count,
        "per_s": count / elapsed,
        "p50_ms": statistics.median(lat) * 1000 if lat else 0.0,
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000 if lat else 0.0,
    }


async def _submit(
    maker: Any, broker: SandboxBroker, users: list[uuid.UUID], seconds: float, meter: Meter
) -> dict[str, float]:
    before = meter.snap()
    lat: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def run(i: int) -> None:
        nonlocal errors
        user = users[i % len(users)]
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                async with session_scope(maker) as s:
                    intake = await orders.prepare(
                        session=s,
                        broker=broker,
                        user_id=user,
                        data=OrderCreate(
                            symbol="BTC/USD",
                            side="buy",
                            notional=500,
                            time_in_force="gtc",
                            client_order_id=uuid.uuid4().hex,
                        ),
                        idempotency_key=None,
                        buffer_bps=500,
                    )
                async with session_scope(maker) as s:
                    sent = await orders.send(session=s, broker=broker, order_id=intake.order_id)
                if sent.status == "rejected":
                    errors += 1
            except Exception:
                errors += 1
            lat.append(time.perf_counter() - t)

    t0 = time.monotonic()
    await asyncio.gather(*(run(i) for i in range(CONCURRENCY)))
    out = _figure(len(lat), time.monotonic() - t0, lat)
    out["errors"] = errors
    out.update(meter.per(before, len(lat)))
    return out


BREAKDOWN_ORDERS = int(os.environ.get("BENCH_BROKERAGE_BREAKDOWN", "100"))


async def _breakdown(
    maker: Any, broker: SandboxBroker, users: list[uuid.UUID], n: int
) -> dict[str, float]:
    """Where an order's CPU goes: `n` orders one after the other (nothing else runs), this
    process's CPU (`time.process_time`) split into PULL's intake (prepare + commit), the
    broker's funding journal and order calls (the sandbox runs in this process), and the
    rest of the send (PULL's reads and writes around them, commit)."""
    spent = {"journal": 0.0, "order": 0.0}

    def timed(name: str, call: Any) -> Any:
        async def run(**kwargs: Any) -> Any:
            t = time.process_time()
            try:
                return await call(**kwargs)
            finally:
                spent[name] += time.process_time() - t

        return run

    intake_cpu = send_cpu = 0.0
    broker.create_journal = timed("journal", broker.create_journal)  # type: ignore[method-assign]
    broker.submit_order = timed("order", broker.submit_order)  # type: ignore[method-assign]
    try:
        for i in range(n):
            t = time.process_time()
            async with session_scope(maker) as s:
                intake = await orders.prepare(
                    session=s,
                    broker=broker,
                    user_id=users[i % len(users)],
                    data=OrderCreate(
                        symbol="BTC/USD",
                        side="buy",
                        notional=500,
                        time_in_force="gtc",
                        client_order_id=uuid.uuid4().hex,
                    ),
                    idempotency_key=None,
                    buffer_bps=500,
                )
            t2 = time.process_time()
            intake_cpu += t2 - t
            async with session_scope(maker) as s:
                await orders.send(session=s, broker=broker, order_id=intake.order_id)
            send_cpu += time.process_time() - t2
    finally:
        del broker.create_journal, broker.submit_order
    ms = 1000 / max(n, 1)
    return {
        "orders": n,
        "intake_cpu_ms": round(intake_cpu * ms, 3),
        "broker_journal_cpu_ms": round(spent["journal"] * ms, 3),
        "broker_order_cpu_ms": round(spent["order"] * ms, 3),
        "send_rest_cpu_ms": round((send_cpu - spent["journal"] - spent["order"]) * ms, 3),
        "total_cpu_ms": round((intake_cpu + send_cpu) * ms, 3),
    }


async def _consume(maker: Any, broker: SandboxBroker, meter: Meter) -> dict[str, float]:
    """Drain the events not applied yet; executions = the fill events among them."""
    async with maker() as s:
        fills = await s.scalar(
            text(
                "SELECT count(*) FROM brokerage_sandbox_events e WHERE payload->>'event' = 'fill'"
                " AND NOT EXISTS (SELECT 1 FROM brokerage_events b WHERE b.id = e.id)"
            )
        )
        total = await s.scalar(
            text(
                "SELECT count(*) FROM brokerage_sandbox_events e"
                " WHERE NOT EXISTS (SELECT 1 FROM brokerage_events b WHERE b.id = e.id)"
            )
        )
    before = meter.snap()
    t0 = time.monotonic()
    applied = await events.consume(maker=maker, broker=broker, stop=asyncio.Event(), drain=True)
    elapsed = time.monotonic() - t0
    return meter.per(before, int(fills or 0)) | {
        "events": applied,
        "events_in_stream": int(total or 0),
        "executions": int(fills or 0),
        "executions_per_s": int(fills or 0) / elapsed,
        "events_per_s": applied / elapsed,
        "seconds": elapsed,
    }


async def run(database_url: str) -> tuple[dict[str, float], ...]:
    settings = Settings(DATABASE_URL=database_url, KYC_LIMITS="")
    engine = make_engine(database_url, pool_size=CONCURRENCY + 4, max_overflow=4)
    maker = make_sessionmaker(engine)
    broker = SandboxBroker(maker, poll_seconds=0.01)
    await broker.set_quote(symbol="BTC/USD", bid=Decimal(97000), ask=Decimal(97010))
    users = await _setup(maker, broker, settings)
    meter = Meter(engine, _postmaster(await _data_directory(maker)))
    holds = await _holds(maker, users, SECONDS, meter)
    # baseline: the consumer in batches of one event per transaction
    first = await _submit(maker, broker, users, SECONDS, meter)
    batch, events.BATCH = events.BATCH, 1
    try:
        one_by_one = await _consume(maker, broker, meter)
    finally:
        events.BATCH = batch
    submit = await _submit(maker, broker, users, SECONDS, meter)
    consume = await _consume(maker, broker, meter)
    submit["cpu_breakdown_sequential"] = await _breakdown(  # type: ignore[assignment]
        maker, broker, users, BREAKDOWN_ORDERS
    )
    consume["baseline_one_event_per_transaction"] = one_by_one  # type: ignore[assignment]
    consume["baseline_orders"] = first  # type: ignore[assignment]
    await engine.dispose()
    return holds, submit, consume


def main() -> None:
    load_start = _load()
    with stack() as st:
        holds, submit, consume = asyncio.run(run(st.database_url))
    result = {
        "machine": machine(),
        "load_average": {"start": load_start, "end": _load()},
        "concurrency": CONCURRENCY,
        "seconds": SECONDS,
        "baseline_ledger_holds": holds,
        "order_submission": submit,
        "event_consumer": consume,
        "targets": {"orders_per_s": 300, "executions_per_s": 2000},
    }
    path = write("brokerage", result)
    print(path)
    print(
        f"holds/s {holds['per_s']:.0f}  orders/s {submit['per_s']:.0f} "
        f"(p50 {submit['p50_ms']:.1f} ms, errors {submit['errors']})  "
        f"executions/s {consume['executions_per_s']:.0f} events/s {consume['events_per_s']:.0f}"
        f"  (one event per transaction: executions/s "
        f"{consume['baseline_one_event_per_transaction']['executions_per_s']:.0f})"  # type: ignore[index]
    )
    print(
        f"per order: {submit['statements_per_op']} statements, "
        f"{submit['process_cpu_ms_per_op']} ms process CPU, "
        f"{submit['postgres_cpu_ms_per_op']} ms PostgreSQL CPU; per execution: "
        f"{consume['statements_per_op']} statements, {consume['process_cpu_ms_per_op']} ms, "
        f"{consume['postgres_cpu_ms_per_op']} ms; per hold: {holds['statements_per_op']}, "
        f"{holds['process_cpu_ms_per_op']} ms, {holds['postgres_cpu_ms_per_op']} ms; "
        f"load {result['load_average']}"
    )
    print(f"one order at a time, CPU per order (ms): {submit['cpu_breakdown_sequential']}")


if __name__ == "__main__":
    main()
