"""A small workflow that exercises the worker loop end to end."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pull.system.activities import SystemCheckInput, SystemCheckResult, system_check


@workflow.defn(name="SystemCheckWorkflow")
class SystemCheckWorkflow:
    @workflow.run
    async def run(self, label: str) -> SystemCheckResult:
        return await workflow.execute_activity(
            system_check,
            SystemCheckInput(label=label),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )
