"""All of PULL's Temporal schedules are created in one place (`pull.worker.ensure_schedules`,
run by `pull schedules` and by workers with WORKER_SCHEDULES on); test workers run with it off."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import RPCError

from pull.brokerage.activities import SCHEDULE_ID as BROKERAGE
from pull.config import Settings
from pull.portfolio.schedule import EOD_SCHEDULE, INTRADAY_SCHEDULE, STATEMENTS_SCHEDULE
from pull.rewards.schedule import SCHEDULE_ID as REWARDS
from pull.worker import ensure_schedules
from tests.conftest import Services

IDS = (BROKERAGE, REWARDS, EOD_SCHEDULE, STATEMENTS_SCHEDULE, INTRADAY_SCHEDULE)


async def _exists(client: Client, schedule_id: str) -> bool:
    try:
        await client.get_schedule_handle(schedule_id).describe()
    except RPCError:
        return False
    return True


async def test_every_schedule_is_created_once_in_one_place(
    temporal_client: Client, settings: Settings, services: Services
) -> None:
    assert services.env()["WORKER_SCHEDULES"] == "false"  # the tests' workers make none
    before = {i for i in IDS if await _exists(temporal_client, i)}
    try:
        await ensure_schedules(temporal_client, settings, strict=True)
        assert all([await _exists(temporal_client, i) for i in IDS])
        await ensure_schedules(temporal_client, settings, strict=True)  # again: kept, no error
        desc = await temporal_client.get_schedule_handle(BROKERAGE).describe()
        assert desc.schedule.spec.intervals[0].every.total_seconds() == (
            settings.brokerage_reconcile_seconds
        )
    finally:
        for i in IDS:
            if i not in before and await _exists(temporal_client, i):
                await temporal_client.get_schedule_handle(i).delete()
