"""One workflow per notification: its outbound channels, each retried on its own."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pull.notifications.activities import (
        ChannelInput,
        FailedInput,
        PlanInput,
        PlanItem,
        deliver_channel,
        mark_failed,
        plan_delivery,
    )

_TIMEOUT = timedelta(seconds=30)
_DB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
# A provider outage is retried for about half an hour, then the channel is marked failed.
_SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=12,
    non_retryable_error_types=["PushRejected"],
)


@workflow.defn(name="NotificationDeliveryWorkflow")
class NotificationDeliveryWorkflow:
    """Id `notification-<id>`: plan (pending channels, quiet-hours holds), then each channel
    in parallel; a channel that keeps failing ends `failed`, the others are unaffected."""

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> dict[str, str]:
        nid = str(arg["notification_id"])
        items: list[PlanItem] = await workflow.execute_activity(
            plan_delivery, PlanInput(nid), start_to_close_timeout=_TIMEOUT, retry_policy=_DB_RETRY
        )

        async def one(item: PlanItem) -> tuple[str, str]:
            if item.delay_seconds > 0:
                await workflow.sleep(timedelta(seconds=item.delay_seconds))
            try:
                status = await workflow.execute_activity(
                    deliver_channel,
                    ChannelInput(nid, item.channel),
                    start_to_close_timeout=_TIMEOUT,
                    retry_policy=_SEND_RETRY,
                )
            except ActivityError as exc:
                await workflow.execute_activity(
                    mark_failed,
                    FailedInput(nid, item.channel, str(exc.cause or exc)),
                    start_to_close_timeout=_TIMEOUT,
                    retry_policy=_DB_RETRY,
                )
                status = "failed"
            return item.channel, status

        results = await asyncio.gather(*(one(i) for i in items))
        return dict(results)


WORKFLOWS: list[type] = [NotificationDeliveryWorkflow]
