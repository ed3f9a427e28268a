"""SettlementWorkflow (id `settle-<ticker>`): pays a resolved market's positions in batches.

Started through the outbox when a market is resolved. `parallelism` lanes each walk a slice of
the user id space in batches; each batch is one idempotent activity (one database
transaction), so a worker killed at any point resumes where the last committed batches ended
and pays every winner exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pull.exchange.activities import (
        FinalizeSettlementInput,
        SettleBatchInput,
        finalize_settlement,
        settle_batch,
    )


@workflow.defn(name="SettlementWorkflow")
class SettlementWorkflow:
    def __init__(self) -> None:
        self.settled = 0
        self.paid = 0
        self.batches = 0

    @workflow.query
    def progress(self) -> dict[str, int]:
        return {"settled": self.settled, "paid": self.paid, "batches": self.batches}

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> dict[str, Any]:
        ticker = str(arg["ticker"])
        batch_size = int(arg.get("batch_size", 5000))
        start_to_close = timedelta(seconds=int(arg.get("start_to_close_seconds", 30)))
        heartbeat = timedelta(seconds=int(arg.get("heartbeat_seconds", 10)))
        retry = RetryPolicy(
            initial_interval=timedelta(milliseconds=200),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=10),
        )
        lanes = max(1, int(arg.get("parallelism", 1)))
        span = 1 << 128

        async def lane(lo: int, hi: int) -> None:
            after: str | None = None
            while True:
                batch = await workflow.execute_activity(
                    settle_batch,
                    SettleBatchInput(
                        ticker=ticker,
                        batch_size=batch_size,
                        after_user_id=after,
                        range_lo=str(uuid.UUID(int=lo)),
                        range_hi=str(uuid.UUID(int=hi)),
                    ),
                    start_to_close_timeout=start_to_close,
                    heartbeat_timeout=heartbeat,
                    retry_policy=retry,
                )
                self.batches += 1
                self.settled += batch.settled
                self.paid += batch.paid
                after = batch.last_user_id or after
                if batch.done:
                    return

        # lanes pay disjoint slices of the user id space side by side (the ledger shards
        # system accounts per connection, so they do not wait on one escrow row)
        await asyncio.gather(
            *(lane(i * span // lanes, (i + 1) * span // lanes - 1) for i in range(lanes))
        )
        final = await workflow.execute_activity(
            finalize_settlement,
            FinalizeSettlementInput(ticker=ticker),
            start_to_close_timeout=start_to_close,
            retry_policy=retry,
        )
        return {
            "ticker": ticker,
            "result": final.result,
            "status": final.status,
            "settled": self.settled,
            "paid": self.paid,
            "batches": self.batches,
        }
