"""Notifications and messaging benchmark, each figure beside a baseline of the same run.

1. Fan-out: NOTES notifications (type `kyc`: in-app and email by default) for USERS customers
   through `notify` in batches (the in-app channel: stored rows, delivery rows, outbox), then
   relayed and delivered by a real worker (one NotificationDeliveryWorkflow each; the email
   sandbox = the outbound_emails table). Baselines: a plain multi-row INSERT of as many rows
   into a scratch table (the database's floor), and as many no-op Temporal workflows started
   and completed on the same server (Temporal's floor).
2. Matrix: MESSAGES sends through PULL's messaging service (membership and mute checks, the
   customer's token, matrix-nio) into a DM on a real Synapse, CONCURRENCY at a time; baseline:
   the same number of raw matrix-nio `room_send` calls on the same room.

The machine is shared (two cores, other sessions' tests and benchmarks running): absolute
figures are pessimistic; compare each with its baseline.
Run: `uv run python -m bench.notifications`. Results: bench/results/notifications.json.
"""

from __future__ import annotations

import asyncio
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
from pull.messaging.service import Messaging, close_homeservers
from pull.notifications.service import Notice, notify
from pull.worker import build_worker, init_runtime, outbox_handlers

USERS = 500
NOTES = 2_000
BATCH = 500
MESSAGES = 300
CONCURRENCY = 4


@workflow.defn(name="BenchNoopWorkflow")
class BenchNoopWorkflow:
    @workflow.run
    async def run(self, arg: dict[str, Any]) -> str:
        return "ok"


async def _relay_until(relay: OutboxRelay, done: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await relay.relay_once()
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
    t0 = time.perf_counter()
    for i in range(0, NOTES, BATCH):
        async with maker() as s, s.begin():
            await notify(session=s, notices=notices[i : i + BATCH])
    created_s = time.perf_counter() - t0
    print(f"created {NOTES} in {created_s:.1f}s", flush=True)

    # the database's floor: the same number of rows in one multi-row INSERT per batch
    async with maker() as s, s.begin():
        await s.execute(text("CREATE TEMP TABLE bench_rows (id uuid, user_id uuid, body text)"))
        t1 = time.perf_counter()
        for i in range(0, NOTES, BATCH):
            await s.execute(
                text(
                    "INSERT INTO bench_rows SELECT gen_random_uuid(), u, 'x' "
                    "FROM unnest(CAST(:ids AS uuid[])) AS u"
                ),
                {"ids": [users[j % USERS] for j in range(i, min(i + BATCH, NOTES))]},
            )
        insert_s = time.perf_counter() - t1

    client = await Client.connect(settings.temporal_address)
    relay = OutboxRelay(maker, outbox_handlers(client, settings), batch_size=500)

    async def emails_done() -> bool:
        async with maker() as s:
            n = await s.scalar(
                text("SELECT count(*) FROM outbound_emails WHERE kind = 'notification.kyc'")
            )
        return int(n or 0) >= NOTES

    t2 = time.perf_counter()
    async with build_worker(client, settings):
        await _relay_until(relay, emails_done, timeout=900)
    delivered_s = time.perf_counter() - t2
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

    # Temporal's floor: as many no-op workflows started and completed on the same server
    queue = f"bench-noop-{uuid.uuid4().hex[:8]}"
    t3 = time.perf_counter()
    async with Worker(
        client,
        task_queue=queue,
        workflows=[BenchNoopWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),  # defined in __main__ when run as a script
        max_concurrent_workflow_tasks=settings.worker_concurrency,
    ):
        handles = []
        for i in range(0, NOTES, BATCH):
            handles += await asyncio.gather(
                *(
                    client.start_workflow(
                        "BenchNoopWorkflow",
                        {},
                        id=f"{queue}-{j}",
                        task_queue=queue,
                        execution_timeout=timedelta(minutes=15),
                    )
                    for j in range(i, min(i + BATCH, NOTES))
                )
            )
        await asyncio.gather(*(h.result() for h in handles))
    noop_s = time.perf_counter() - t3
    await runtime.redis.aclose()
    await runtime.engine.dispose()
    return {
        "notifications": NOTES,
        "create_in_app_per_s": round(NOTES / created_s),
        "baseline_plain_insert_rows_per_s": round(NOTES / insert_s),
        "delivered_in_app_and_email_per_s": round(NOTES / (created_s + delivered_s)),
        "email_rows": int(emails or 0),
        "duplicate_deliveries": int(dup or 0),
        "baseline_noop_workflows_per_s": round(NOTES / noop_s),
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
    svc = Messaging(settings)
    async with maker() as s, s.begin():
        room = await svc.open_dm(s, a, b)
        creds = await svc.account(s, a)

    async def through_pull(i: int) -> None:
        async with maker() as s, s.begin():
            await svc.send(s, user_id=a, room_id=room.id, body=f"pull {i}", txn_id=None)

    raw = nio.AsyncClient(settings.matrix_homeserver_url, creds.user_id)
    raw.access_token, raw.user_id = creds.access_token, creds.user_id

    async def baseline(i: int) -> None:
        resp = await raw.room_send(
            room.matrix_room_id, "m.room.message", {"msgtype": "m.text", "body": f"raw {i}"}
        )
        assert isinstance(resp, nio.RoomSendResponse), resp

    async def run(fn: Any) -> float:
        todo = list(range(MESSAGES))

        async def worker() -> None:
            while todo:
                await fn(todo.pop())

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return MESSAGES / (time.perf_counter() - t0)

    raw_rate = await run(baseline)
    pull_rate = await run(through_pull)
    await raw.close()
    await close_homeservers()
    await runtime.redis.aclose()
    await runtime.engine.dispose()
    return {
        "messages": MESSAGES,
        "concurrency": CONCURRENCY,
        "through_pull_per_s": round(pull_rate, 1),
        "baseline_raw_nio_per_s": round(raw_rate, 1),
    }


def main() -> None:
    with stack() as s:
        data = Path(tempfile.mkdtemp(prefix="pull-bench-matrix-"))
        synapse, url, secret = devstack.start_synapse(data, devstack.free_port())
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
            results["matrix"] = asyncio.run(matrix_send(settings))
        finally:
            synapse.stop()
    path = write("notifications", results)
    print(results)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
