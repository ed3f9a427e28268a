"""BrokerageReconcileWorkflow: one reconciliation run, started by the `brokerage-reconcile`
Temporal schedule every BROKERAGE_RECONCILE_SECONDS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pull.brokerage.activities import ReconcileInput, reconcile_activity


@workflow.defn(name="BrokerageReconcileWorkflow")
class BrokerageReconcileWorkflow:
    @workflow.run
    async def run(self, arg: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await workflow.execute_activity(
            reconcile_activity,
            ReconcileInput(grace_seconds=float(arg.get("grace_seconds", 30.0))),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        return result


WORKFLOWS = [BrokerageReconcileWorkflow]
