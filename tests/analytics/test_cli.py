"""The operator's commands as real processes: `pull migrate` applies the ClickHouse migrations,
`pull analytics backfill` loads the outbox's history, and running either again changes
nothing."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from pathlib import Path

from pull.analytics import chschema
from pull.kit.db import make_engine, make_sessionmaker
from pull.kit.outbox import emit
from tests.conftest import REPO, Services, create_scratch_database


def _pull(services: Services, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pull.cli", *args],
        env=services.env(**env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def _history(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            for _ in range(3):
                emit(s, topic="identity.user_registered", key="k",
                     payload={"user_id": str(uuid.uuid4())})  # fmt: skip
            for i in range(2):
                emit(s, topic="funding.deposit_settled", key="k",
                     payload={"deposit_id": f"d{i}", "user_id": "u", "amount": 500})  # fmt: skip
            emit(s, topic="test.thing", key="k", payload={"n": 1})
    finally:
        await engine.dispose()


def test_migrate_and_backfill_as_processes(services: Services, tmp_path: Path) -> None:
    database_url = create_scratch_database(services, "pull_analytics_cli")
    env = {"DATABASE_URL": database_url, "CLICKHOUSE_CHDB_PATH": str(tmp_path / "chdb")}
    versions = [m.version for m in chschema.MIGRATIONS]
    out = _pull(services, env, "migrate")
    assert f"clickhouse migrations applied: {versions}" in out, out
    assert "clickhouse migrations applied: none needed" in _pull(services, env, "migrate")

    asyncio.run(_history(database_url))
    out = _pull(services, env, "analytics", "backfill", "--batch-size", "4")
    found = re.search(
        r"backfill: (\d+) outbox events, \d+ users, \d+ client events; (\d+) rows", out
    )
    assert found, out
    # 6 raw rows, 3 sign-ups and 2 deposits (the scratch database has no users table rows)
    assert (int(found[1]), int(found[2])) == (6, 11), out
    again = _pull(services, env, "analytics", "backfill")
    assert re.search(r"; 11 rows in ClickHouse", again), again
