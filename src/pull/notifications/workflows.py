"""The delivery workflow: the outbound channels of a batch of notifications, each retried."""

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
        PlanGroup,
        PlanInput,
        deliver_batch,
        mark_failed_batch,
        plan_batch,
    )

_DB_TIMEOUT = timedelta(seconds=60)
# A batch sends in chunks, heartbeating after each; a stuck chunk is retried after 2 min.
_SEND_TIMEOUT = timedelta(minutes=15)
_HEARTBEAT = timedelta(minutes=2)
_DB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
# A provider outage is retried for about half an hour, then what is still pending on the
# channel is marked failed.
_SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=12,
)


@workflow.defn(name="NotificationBatchDeliveryWorkflow")
class NotificationBatchDeliveryWorkflow:
    """Id `notifications-<first id>`, arg {notification_ids}: plan (the pending channels,
    grouped by quiet-hours hold), then each group in parallel; a group that keeps failing
    ends with its still-pending rows `failed`, the others are unaffected."""

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> dict[str, int]:
        ids = [str(i) for i in arg["notification_ids"]]
        groups: list[PlanGroup] = await workflow.execute_activity(
            plan_batch, PlanInput(ids), start_to_close_timeout=_DB_TIMEOUT, retry_policy=_DB_RETRY
        )

        async def one(g: PlanGroup) -> tuple[str, int]:
            if g.delay_seconds > 0:
                await workflow.sleep(timedelta(seconds=g.delay_seconds))
            key = f"{g.channel}+{g.delay_seconds}s"
            try:
                sent: int = await workflow.execute_activity(
                    deliver_batch,
                    ChannelInput(g.notification_ids, g.channel),
                    start_to_close_timeout=_SEND_TIMEOUT,
                    heartbeat_timeout=_HEARTBEAT,
                    retry_policy=_SEND_RETRY,
                )
            except ActivityError as exc:
                await workflow.execute_activity(
                    mark_failed_batch,
                    FailedInput(g.notification_ids, g.channel, str(exc.cause or exc)),
                    start_to_close_timeout=_DB_TIMEOUT,
                    retry_policy=_DB_RETRY,
                )
                return key, -1
            return key, sent

        return dict(await asyncio.gather(*(one(g) for g in groups)))


WORKFLOWS: list[type] = [NotificationBatchDeliveryWorkflow]
