"""A worker process starts without Temporal's default build id, which hashes the bytecode of
every loaded module (about 6 s of CPU per process on this machine): PULL names its build."""

from __future__ import annotations

import pytest
import temporalio.worker._worker as temporal_worker
from temporalio.client import Client

from pull.config import Settings
from pull.worker import BUILD_ID, build_worker


async def test_the_worker_is_built_under_pulls_own_build_id(
    temporal_client: Client, settings: Settings, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**_: object) -> str:
        raise AssertionError("the default build id was computed")

    monkeypatch.setattr(temporal_worker, "load_default_build_id", refuse)
    worker = build_worker(temporal_client, settings, task_queue=task_queue)
    assert worker.config()["build_id"] == BUILD_ID
