"""Notifications and messaging benchmark, each figure beside a baseline of the same run.

1. Fan-out: NOTES notifications (type `kyc`: in-app and email by default) for USERS customers
   through `notify` in batches of BATCH (the in-app channel: stored rows, delivery rows,
   outbox), then relayed and delivered by a real worker (one NotificationBatchDeliveryWorkflow
   per batch; the email sandbox = the outbound_emails table; in-app = stored, and pushed on
   the live stream by the relay: the run ends when both are done). Baselines: a plain multi-row
   INSERT of as many rows into a scratch table (the database's floor), and as many no-op
   Temporal workflows started and completed on the same server (the ceiling of a workflow per
   notification).
2. Matrix: MESSAGES sends through PULL's messaging service (membership and mute checks, the
   customer's token, matrix-nio) into a DM on a real Synapse, CONCURRENCY at a time, then the
   same spread over ROOMS DMs; baseline: as many raw matrix-nio `room_send` calls on one room.

Each phase also reports the CPU it cost, summed over this process and every process it
started (PostgreSQL, Redis, Temporal, Synapse), from /proc: CPU ms per operation does not
depend on what else the shared machine runs, unlike the rates. The machine is shared (two
cores, other sessions' tests and benchmarks running): absolute rates are pessimistic; compare
each with its baseline of the same run.
Run: `uv run python -m bench.notifications` (`--fan-out-only`: part 1 alone, written to
bench/results/notifications-fan-out.json; `--matrix-only`: part 2). Results:
bench/results/notifications.json.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import nio
from sqlalchemy import text
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.common import machine, stack, write
from pull import devstack
from pull.config import Settings
from pull.kit.outbox import OutboxRelay
from pull.kit.streams import USER_STREAM
from pull.messaging.service import Messaging, close_homeservers
from pull.notifications.service import Notice, notify
from pull.worker import build_worker, init_runtime, outbox_batch_handlers, outbox_handlers

USERS = 500
# Short runs on the shared machine: BENCH_NOTES / BENCH_NOOPS (the empty-workflow baseline,
# 5-30/s here, so fewer of them) override the defaults.
NOTES = int(os.environ.get("BENCH_NOTES", "2000"))
NOOPS = int(os.environ.get("BENCH_NOOPS", "200"))
BATCH = 500
MESSAGES = 300
CONCURRENCY = 4
ROOMS = 4
STARTS_IN_FLIGHT = 50
_TICK = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            out.setdefault(ppid, []).append(int(d))
    return out


def tree_cpu() -> float:
    """CPU seconds (user + system, with reaped children's) of this process and every live
    process below it."""
    kids, todo, total = _children(), [os.getpid()], 0.0
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, []))
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in f[11:15]) / _TICK
    return total


def tree_cpu_by_name() -> dict[str, float]:
    """`tree_cpu` split by process name (python, postgres, temporal, redis-server, ...)."""
    kids, todo, out = _children(), [os.getpid()], {}
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, []))
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name = raw.split("(", 1)[1].rsplit(")", 1)[0].split()[0] if "(" in raw else "?"
        f = raw.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + sum(int(x) for x in f[11:15]) / _TICK
    return out


def _split_ms(before: dict[str, float], n: int) -> dict[str, float]:
    after = tree_cpu_by_name()
    return {
        k: _ms_per(v - before.get(k, 0.0), n)
        for k, v in sorted(after.items())
        if v - before.get(k, 0.0) > 0.005
    }


def _ms_per(cpu_s: float, n: int) -> float:
    return round(cpu_s * 1000 / n, 3)


@workflow.defn(name="BenchNoopWorkflow")
class BenchNoopWorkflow:
    @workflow.run
    async def run(self, arg: dict[str, Any]) -> str:
        return "ok"


async def _relay_until(relay: OutboxRelay, done: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await relay.relay_once() == 0:  # as `OutboxRelay.run`: a pause only when idle
            if await done():
                return
            await asyncio.sleep(0.05)
    raise TimeoutError("deliveries not finished")


async def fan_out(settings: Settings) -> dict[str, Any]:
    runtime = init_runtime(settings)
    maker = runtime.sessionmaker
    users = [uuid.uuid4() for _ in range(USERS)]
    async with maker() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO users (id, email, password_hash, referral_code, email_verified_at) "
                "SELECT u, u::text || '@bench.example', 'x', substr(md5(u::text), 1, 8), now() "
                "FROM unnest(CAST(:ids AS uuid[])) AS u"
            ),
            {"ids": users},
        )
    notices = [
        Notice(
            user_id=users[i % USERS],
            type="kyc",
            title="Verification approved",
            body="Your account is now verified.",
            dedupe_key=f"bench:{i}",
        )
        for i in range(NOTES)
    ]
    c0, t0, by0 = tree_cpu(), time.perf_counter(), tree_cpu_by_name()
    for i in range(0, NOTES, BATCH):
        async with maker() as s, s.begin():
            await notify(session=s, notices=notices[i : i + BATCH])
    created_s = time.perf_counter() - t0
    created_cpu = tree_cpu() - c0
    created_split = _split_ms(by0, NOTES)
    print(f"created {NOTES} in {created_s:.1f}s", flush=True)

    # the database's floor: the same number of rows in one multi-row INSERT per batch
    async with maker() as s, s.begin():
        await s.execute(text("CREATE TEMP TABLE bench_rows (id uuid, user_id uuid, body text)"))
        c1, t1 = tree_cpu(), time.perf_counter()
        for i in range(0, NOTES, BATCH):
            await s.execute(
                text(
                    "INSERT INTO bench_rows SELECT gen_random_uuid(), u, 'x' "
                    "FROM unnest(CAST(:ids AS uuid[])) AS u"
                ),
                {"ids": [users[j % USERS] for j in range(i, min(i + BATCH, NOTES))]},
            )
        insert_s = time.perf_counter() - t1
        insert_cpu = tree_cpu() - c1

    client = await Client.connect(settings.temporal_address)
    relay = OutboxRelay(
        maker,
        outbox_handlers(client, settings),
        batch_size=500,
        batch_handlers=outbox_batch_handlers(),
    )

    async def delivered() -> bool:
        """Both channels: every e-mail row written and every in-app push relayed (the
        `notifications.created` events delivered to the live stream)."""
        async with maker() as s:
            n = await s.scalar(
                text("SELECT count(*) FROM outbound_emails WHERE kind = 'notification.kyc'")
            )
            pending = await s.scalar(
                text(
                    "SELECT count(*) FROM outbox_events "
                    "WHERE topic = 'notifications.created' AND delivered_at IS NULL"
                )
            )
        return int(n or 0) >= NOTES and int(pending or 0) == 0

    # Built before the clock starts: Temporal's Worker() hashes every loaded module's code for
    # its default build id, seconds of CPU that are the worker's start-up, not delivery.
    worker = build_worker(client, settings)
    c2, t2, by2 = tree_cpu(), time.perf_counter(), tree_cpu_by_name()
    async with worker:
        await _relay_until(relay, delivered, timeout=900)
    delivered_s = time.perf_counter() - t2
    delivered_cpu = tree_cpu() - c2
    delivered_split = _split_ms(by2, NOTES)
    print(f"delivered in {delivered_s:.1f}s", flush=True)
    async with maker() as s:
        dup = await s.scalar(
            text(
                "SELECT count(*) FROM (SELECT notification_id, channel FROM notification_deliveries"
                " GROUP BY 1, 2 HAVING count(*) > 1) d"
            )
        )
        emails = await s.scalar(
            text("SELECT count(*) FROM outbound_emails WHERE kind = 'notification.kyc'")
        )
        # the workflows' own sending: first to last email row (each chunk's transaction time)
        email_span = await s.scalar(
            text(
                "SELECT extract(epoch FROM max(created_at) - min(created_at)) "
                "FROM outbound_emails WHERE kind = 'notification.kyc'"
            )
        )

    pushes, after = 0, "-"
    while True:  # in pages: one XRANGE of the whole stream timed out on a loaded machine
        page: list[tuple[bytes, dict[bytes, bytes]]] = await runtime.redis.xrange(  # type: ignore[assignment]
            USER_STREAM, min=after, count=1000
        )
        pushes += sum(1 for _, f in page if b'"type":"notification"' in f[b"e"])
        if len(page) < 1000:
            break
        after = "(" + page[-1][0].decode()

    # Temporal's floor: as many no-op workflows started and completed on the same server
    queue = f"bench-noop-{uuid.uuid4().hex[:8]}"
    c3, t3 = tree_cpu(), time.perf_counter()
    async with Worker(
        client,
        task_queue=queue,
        workflows=[BenchNoopWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),  # defined in __main__ when run as a script
        max_concurrent_workflow_tasks=settings.worker_concurrency,
    ):
        gate = asyncio.Semaphore(STARTS_IN_FLIGHT)  # 500 at once time out on a loaded box

        async def one(j: int) -> None:
            async with gate:  # also its result's long poll (the namespace caps pollers)
                handle = await client.start_workflow(
                    "BenchNoopWorkflow",
                    {},
                    id=f"{queue}-{j}",
                    task_queue=queue,
                    execution_timeout=timedelta(minutes=15),
                )
                await handle.result()

        await asyncio.gather(*(one(j) for j in range(NOOPS)))
    noop_s = time.perf_counter() - t3
    noop_cpu = tree_cpu() - c3
    await runtime.redis.aclose()
    await runtime.engine.dispose()
    return {
        "notifications": NOTES,
        "create_in_app_per_s": round(NOTES / created_s),
        "baseline_plain_insert_rows_per_s": round(NOTES / insert_s),
        "delivered_in_app_and_email_per_s": round(NOTES / (created_s + delivered_s)),
        "email_rows": int(emails or 0),
        "in_app_pushes": pushes,
        "emails_first_to_last_s": round(float(email_span or 0), 2),
        "duplicate_deliveries": int(dup or 0),
        "baseline_noop_workflows_per_s": round(NOOPS / noop_s),
        "cpu_ms_per_notification_create": _ms_per(created_cpu, NOTES),
        "cpu_ms_per_notification_deliver": _ms_per(delivered_cpu, NOTES),
        "cpu_ms_per_notification_create_by_process": created_split,
        "cpu_ms_per_notification_deliver_by_process": delivered_split,
        "baseline_cpu_ms_per_plain_insert_row": _ms_per(insert_cpu, NOTES),
        "baseline_cpu_ms_per_noop_workflow": _ms_per(noop_cpu, NOOPS),
        "load_average": os.getloadavg(),
    }


async def matrix_send(settings: Settings) -> dict[str, Any]:
    runtime = init_runtime(settings)
    maker = runtime.sessionmaker
    a, b = uuid.uuid4(), uuid.uuid4()
    async with maker() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO users (id, email, password_hash, referral_code) "
                "SELECT u, u::text || '@bench.example', 'x', substr(md5(u::text), 1, 8) "
                "FROM unnest(CAST(:ids AS uuid[])) AS u"
            ),
            {"ids": [a, b]},
        )
    others = [uuid.uuid4() for _ in range(ROOMS - 1)]
    async with maker() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO users (id, email, password_hash, referral_code) "
                "SELECT u, u::text || '@bench.example', 'x', substr(md5(u::text), 1, 8) "
                "FROM unnest(CAST(:ids AS uuid[])) AS u"
            ),
            {"ids": others},
        )
    svc = Messaging(settings)
    async with maker() as s, s.begin():
        room = await svc.open_dm(s, a, b)
        rooms = [room] + [await svc.open_dm(s, a, o) for o in others]
        creds = await svc.account(s, a)

    async def through_pull(i: int) -> None:
        async with maker() as s, s.begin():
            await svc.send(s, user_id=a, room_id=room.id, body=f"pull {i}", txn_id=None)

    async def through_pull_rooms(i: int) -> None:
        async with maker() as s, s.begin():
            r = rooms[i % ROOMS]
            await svc.send(s, user_id=a, room_id=r.id, body=f"pull {i}", txn_id=None)

    raw = nio.AsyncClient(settings.matrix_homeserver_url, creds.user_id)
    raw.access_token, raw.user_id = creds.access_token, creds.user_id

    async def baseline(i: int) -> None:
        resp = await raw.room_send(
            room.matrix_room_id, "m.room.message", {"msgtype": "m.text", "body": f"raw {i}"}
        )
        assert isinstance(resp, nio.RoomSendResponse), resp

    cpu: dict[str, float] = {}

    async def run(fn: Any) -> float:
        todo = list(range(MESSAGES))

        async def worker() -> None:
            while todo:
                await fn(todo.pop())

        c0, t0 = tree_cpu(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        rate = MESSAGES / (time.perf_counter() - t0)
        cpu[fn.__name__] = _ms_per(tree_cpu() - c0, MESSAGES)
        return rate

    raw_rate = await run(baseline)
    pull_rate = await run(through_pull)
    rooms_rate = await run(through_pull_rooms)
    await raw.close()
    await close_homeservers()
    await runtime.redis.aclose()
    await runtime.engine.dispose()
    return {
        "messages": MESSAGES,
        "concurrency": CONCURRENCY,
        "through_pull_per_s": round(pull_rate, 1),
        "through_pull_over_rooms_per_s": round(rooms_rate, 1),
        "rooms": ROOMS,
        "baseline_raw_nio_per_s": round(raw_rate, 1),
        "cpu_ms_per_send_through_pull": cpu["through_pull"],
        "cpu_ms_per_send_over_rooms": cpu["through_pull_rooms"],
        "baseline_cpu_ms_per_raw_send": cpu["baseline"],
        "load_average": os.getloadavg(),
    }


def main() -> None:
    fan_out_only = "--fan-out-only" in sys.argv
    with stack() as s:
        data = Path(tempfile.mkdtemp(prefix="pull-bench-matrix-"))
        synapse, url, secret = (
            (None, "http://127.0.0.1:1", "unused")
            if fan_out_only
            else devstack.start_synapse(data, devstack.free_port())
        )
        try:
            settings = Settings(
                DATABASE_URL=s.database_url,
                REDIS_URL=s.redis_url,
                TEMPORAL_ADDRESS=s.temporal_address,
                TEMPORAL_TASK_QUEUE=f"bench-notify-{uuid.uuid4().hex[:8]}",
                MATRIX_HOMESERVER_URL=url,
                MATRIX_REGISTRATION_SHARED_SECRET=secret,
                WORKER_CONCURRENCY=50,
                DB_POOL_SIZE=20,
            )
            results: dict[str, Any] = {"machine": machine()}
            if "--matrix-only" not in sys.argv:
                results["fan_out"] = asyncio.run(fan_out(settings))
            if not fan_out_only:
                results["matrix"] = asyncio.run(matrix_send(settings))
        finally:
            if synapse is not None:
                synapse.stop()
    path = write("notifications-fan-out" if fan_out_only else "notifications", results)
    print(results)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
