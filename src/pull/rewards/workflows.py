"""Rewards workflows: fulfilling a redemption, and the maintenance run of the schedule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pull.rewards.activities import (
        BatchInput,
        FailInput,
        RedemptionInput,
        expire_batch,
        fail_redemption,
        fulfil_redemption,
        rebuild_leaderboard,
        review_batch,
        warn_batch,
    )

_TIMEOUT = timedelta(seconds=60)
# A provider outage is retried for a while (about 10 minutes), then the redemption fails and
# the points come back.
_FULFIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=15,
    non_retryable_error_types=["GiftCardDeclined"],
)
_DB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)


@workflow.defn(name="RedemptionWorkflow")
class RedemptionWorkflow:
    """Id `redemption-<id>`. pending -> fulfilled (hold posted) | failed (hold voided, stock
    restored)."""

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> str:
        rid = str(arg["redemption_id"])
        try:
            return await workflow.execute_activity(
                fulfil_redemption,
                RedemptionInput(rid),
                start_to_close_timeout=_TIMEOUT,
                retry_policy=_FULFIL_RETRY,
            )
        except ActivityError as exc:
            reason = str(exc.cause or exc)
            return await workflow.execute_activity(
                fail_redemption,
                FailInput(rid, reason[:500]),
                start_to_close_timeout=_TIMEOUT,
                retry_policy=_DB_RETRY,
            )


@workflow.defn(name="RewardsMaintenanceWorkflow")
class RewardsMaintenanceWorkflow:
    """Run by the `rewards-maintenance` schedule: expire due lots, warn of lots expiring
    within the warning window, review tiers, rebuild the leaderboards. Each step works in
    committed batches until nothing is left, so a run that dies resumes where it stopped and a
    second run finds nothing to do twice."""

    @workflow.run
    async def run(self, arg: dict[str, Any] | None = None) -> dict[str, int]:
        totals = {"expired": 0, "warned": 0, "reviewed": 0, "leaderboard": 0}
        for name, act in (
            ("expired", expire_batch),
            ("warned", warn_batch),
            ("reviewed", review_batch),
        ):
            while True:
                done = await workflow.execute_activity(
                    act,
                    BatchInput(),
                    start_to_close_timeout=_TIMEOUT,
                    retry_policy=_DB_RETRY,
                )
                totals[name] += done
                if done == 0:
                    break
        totals["leaderboard"] = await workflow.execute_activity(
            rebuild_leaderboard,
            BatchInput(),
            start_to_close_timeout=_TIMEOUT,
            retry_policy=_DB_RETRY,
        )
        return totals


WORKFLOWS = [RedemptionWorkflow, RewardsMaintenanceWorkflow]
