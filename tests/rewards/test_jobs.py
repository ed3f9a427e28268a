"""The maintenance workflow (expiry, warnings, tier reviews, leaderboard rebuild) on a real
worker, and the Temporal schedule that runs it."""

from __future__ import annotations

import contextlib
import uuid

from sqlalchemy import text
from temporalio.client import ScheduleActionStartWorkflow

from pull.rewards.schedule import SCHEDULE_ID, ensure_schedule
from tests.conftest import UserFactory
from tests.rewards.conftest import RewardsEnv


async def test_maintenance_workflow_is_idempotent_and_resumable(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    users = [await user_factory() for _ in range(3)]
    for u in users:
        await rw.grant(u, 100)
    async with rw.maker() as s, s.begin():
        await s.execute(text("UPDATE rewards_lots SET expires_at = now() - interval '1 hour'"))
    async with rw.worker():
        first = await rw.temporal.execute_workflow(
            "RewardsMaintenanceWorkflow",
            None,
            id=f"maint-{uuid.uuid4().hex}",
            task_queue=rw.task_queue,
        )
        second = await rw.temporal.execute_workflow(
            "RewardsMaintenanceWorkflow",
            None,
            id=f"maint-{uuid.uuid4().hex}",
            task_queue=rw.task_queue,
        )
    assert first["expired"] == 3 and second["expired"] == 0
    for u in users:
        assert (await rw.balance(u))["available"] == 0
    await rw.assert_books()


async def test_schedule_is_created_once(rw: RewardsEnv) -> None:
    created = await ensure_schedule(rw.temporal, rw.settings)
    try:
        assert await ensure_schedule(rw.temporal, rw.settings) is False
        desc = await rw.temporal.get_schedule_handle(SCHEDULE_ID).describe()
        action = desc.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == "RewardsMaintenanceWorkflow"
        interval = desc.schedule.spec.intervals[0].every
        assert interval.total_seconds() == rw.settings.rewards_maintenance_interval_seconds
    finally:
        if created:
            with contextlib.suppress(Exception):
                await rw.temporal.get_schedule_handle(SCHEDULE_ID).delete()
