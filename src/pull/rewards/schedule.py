"""The Temporal schedule `rewards-maintenance`, created by the worker at start if missing."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from pull.config import Settings

log = logging.getLogger("pull.rewards")
SCHEDULE_ID = "rewards-maintenance"


async def ensure_schedule(client: Client, settings: Settings) -> bool:
    """Create the schedule (True) unless it exists (False). Overlapping runs are skipped."""
    try:
        await client.create_schedule(
            SCHEDULE_ID,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    "RewardsMaintenanceWorkflow",
                    id="rewards-maintenance-run",
                    task_queue=settings.temporal_task_queue,
                ),
                spec=ScheduleSpec(
                    intervals=[
                        ScheduleIntervalSpec(
                            every=timedelta(seconds=settings.rewards_maintenance_interval_seconds)
                        )
                    ]
                ),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )
    except ScheduleAlreadyRunningError:
        return False
    log.info("rewards maintenance schedule created")
    return True
