"""The Temporal schedules `portfolio-eod` (00:05 UTC daily), `portfolio-intraday` (every
PORTFOLIO_INTRADAY_MINUTES) and `portfolio-statements` (02:00 UTC on the 1st, the month just
ended), created by the worker at start if missing."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
)

from pull.config import Settings

log = logging.getLogger("pull.portfolio")
EOD_SCHEDULE = "portfolio-eod"
STATEMENTS_SCHEDULE = "portfolio-statements"
INTRADAY_SCHEDULE = "portfolio-intraday"


async def ensure_schedules(client: Client, settings: Settings) -> list[str]:
    """Create the schedules that are missing; returns those created. Overlaps are skipped
    (a run still going finishes first: its points are the same)."""
    made = []
    batch = settings.portfolio_snapshot_batch
    every = settings.portfolio_intraday_minutes
    specs: dict[str, tuple[ScheduleSpec, dict[str, object]]] = {
        EOD_SCHEDULE: (
            ScheduleSpec(
                calendars=[
                    ScheduleCalendarSpec(
                        hour=[ScheduleRange(0)], minute=[ScheduleRange(5)], comment="00:05 UTC"
                    )
                ]
            ),
            {"kind": "eod", "batch": batch},
        ),
        INTRADAY_SCHEDULE: (
            ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=every))]),
            {"kind": "intraday", "batch": batch, "every_minutes": every},
        ),
        STATEMENTS_SCHEDULE: (
            ScheduleSpec(
                calendars=[
                    ScheduleCalendarSpec(
                        day_of_month=[ScheduleRange(1)],
                        hour=[ScheduleRange(2)],
                        minute=[ScheduleRange(0)],
                        comment="02:00 UTC on the 1st",
                    )
                ]
            ),
            {"batch": 100},
        ),
    }
    for schedule_id, (spec, arg) in specs.items():
        try:
            await client.create_schedule(
                schedule_id,
                Schedule(
                    action=ScheduleActionStartWorkflow(
                        "PortfolioStatementsWorkflow"
                        if schedule_id == STATEMENTS_SCHEDULE
                        else "PortfolioSnapshotWorkflow",
                        arg,
                        id=f"{schedule_id}-run",
                        task_queue=settings.temporal_task_queue,
                    ),
                    spec=spec,
                    policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
                ),
            )
        except ScheduleAlreadyRunningError:
            continue
        made.append(schedule_id)
        log.info("portfolio schedule created", extra={"schedule": schedule_id})
    return made
