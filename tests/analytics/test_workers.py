"""chDB from every process: one owns the engine, the others relay to it (pull.analytics.relay).

In this process the session's warehouse is the owner; a `RelayWarehouse` on the same directory
goes through the owner's socket like another process would. The end-to-end test starts a real
two-worker `pull api` on a database of its own and asks the dashboards until both workers have
answered: the same numbers from the worker that owns chDB and from the one that relays, and
again after the owner is killed (the survivor takes the engine over).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pull.analytics import chschema, relay, warehouse
from pull.analytics.client import Target, Warehouse, target_for
from pull.analytics.errors import AnalyticsUnavailable
from pull.analytics.normalize import COLUMNS, TYPES, EventColumns
from pull.config import Settings
from tests.conftest import (
    DEFAULT_TEST_PASSWORD,
    Services,
    create_scratch_database,
    enable_totp,
    start_api_process,
    stop_process,
)

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.dates()
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(values)
def test_values_cross_the_wire_unchanged(value: Any) -> None:
    assert relay.decode(relay.encode(value)) == value


def _relay(settings: Settings, key: str | None = None) -> relay.RelayWarehouse:
    return relay.RelayWarehouse(
        target_for(settings), key or settings.internal_api_key, promote=lambda: None
    )


async def test_a_relay_reads_and_writes_through_the_owner(
    wh: Warehouse, analytics_settings: Settings
) -> None:
    other = _relay(analytics_settings)
    assert other.relayed and not other.own()  # this process owns the engine, and answers
    batch = EventColumns()
    now = int(time.time() * 1000)
    for i in range(3):
        batch.add(f"t:{i}", "signed_up", "outbox", "t", f"u{i}", "", now, 0, 0, 0, "", "", "", "{}")
    other.insert("events", batch.columns(now), COLUMNS, column_oriented=True, types=TYPES)
    assert warehouse.count_events(wh) == 3
    # an outbox batch as the ingester sends it: its raw row and its sign-up
    line = b'9\t%d\t%s\t{"user_id": "u9"}\n' % (now, b"identity.user_registered".hex().encode())
    other.insert_raw("outbox_in", line, chschema.OUTBOX_IN_COLUMNS)
    assert warehouse.count_events(wh) == 5
    today = dt.datetime.now(dt.UTC).date()
    assert other.rows(
        f"SELECT toDate(ts), count() FROM {wh.database}.events "
        "WHERE toDate(ts) = {d:Date} GROUP BY 1",
        {"d": today},
    ) == [(today, 5)]
    assert warehouse.daily_facts(other, today, today) == warehouse.daily_facts(wh, today, today)
    with pytest.raises(relay.RemoteError):
        other.rows("SELECT no_such_column FROM system.one")
    with pytest.raises(AnalyticsUnavailable):
        _relay(analytics_settings, key="not-the-key").rows("SELECT 1")


def test_the_owner_lock_is_held() -> None:
    """A second taker of a held lock gets None (another process would, the same way)."""
    target = Target(database="x", chdb_path=f"{tempfile.gettempdir()}/pull-lock-{uuid.uuid4().hex}")
    fd = relay.try_lock(target)
    assert fd is not None
    try:
        # flock locks belong to the open file description: a second open is a second taker
        assert relay.try_lock(target) is None
    finally:
        os.close(fd)
    again = relay.try_lock(target)
    assert again is not None
    os.close(again)
    relay.lock_path(target).unlink()


# --- a real two-worker `pull api` -----------------------------------------------------------


async def _admin(http: httpx.AsyncClient, database_url: str) -> dict[str, str]:
    from pull.identity import service
    from pull.kit.db import make_engine, make_sessionmaker

    r = await http.post(
        "/api/auth/register",
        json={
            "email": f"admin-{uuid.uuid4().hex[:8]}@example.com",
            "password": DEFAULT_TEST_PASSWORD,
        },
    )
    assert r.status_code == 201, r.text
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            await service.set_role(
                session=s, user_id=uuid.UUID(r.json()["user"]["id"]), role="admin"
            )
    finally:
        await engine.dispose()
    await enable_totp(http, headers)
    return headers


def _ask_every_worker(
    url: str, headers: dict[str, str], path: str, workers: int, timeout: float = 120
) -> dict[int, tuple[str, Any]]:
    """GET `path` on fresh connections (the kernel hands each to some worker) until `workers`
    processes have answered; {pid: (how, body)}. Every answer must be a 200."""
    seen: dict[int, tuple[str, Any]] = {}
    deadline = time.monotonic() + timeout
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=url, headers=headers, timeout=60, limits=limits) as c:
        while len(seen) < workers:
            assert time.monotonic() < deadline, f"only {sorted(seen)} answered {path}"
            r = c.get(path)
            assert r.status_code == 200, (r.status_code, r.text)
            pid, how = r.headers["X-Analytics-Process"].split()
            seen[int(pid)] = (how, r.json())
    return seen


@pytest.mark.timeout(900)  # two API workers start (and one restarts) on a shared machine
async def test_every_api_worker_serves_the_dashboards(services: Services, tmp_path: Path) -> None:
    database_url = await asyncio.to_thread(
        create_scratch_database, services, "pull_analytics_workers"
    )
    proc, url = await asyncio.to_thread(
        start_api_process,
        services,
        start_timeout=180,
        API_WORKERS="2",
        DATABASE_URL=database_url,
        RATE_LIMIT_ENABLED="false",
        ANALYTICS_INGEST="api",
        ANALYTICS_POLL_SECONDS="0.2",
        ANALYTICS_GAP_SECONDS="0.5",
        CLICKHOUSE_CHDB_PATH=str(tmp_path / "chdb"),
    )
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            admin = await _admin(http, database_url)
            for _ in range(3):
                r = await http.post(
                    "/api/auth/register",
                    json={
                        "email": f"u-{uuid.uuid4().hex[:8]}@example.com",
                        "password": DEFAULT_TEST_PASSWORD,
                    },
                )
                assert r.status_code == 201, r.text
        today = dt.datetime.now(dt.UTC).date().isoformat()
        path = f"/api/admin/analytics/funnel?start={today}&end={today}"
        deadline = time.monotonic() + 120
        while True:  # the owner's ingester catches up with the four sign-ups
            seen = await asyncio.to_thread(_ask_every_worker, url, admin, path, 1)
            ((_how, body),) = seen.values()
            if body["steps"][0]["users"] == 4:
                break
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.5)

        for name in ("overview", "funnel", "retention", "revenue", "markets"):
            path = f"/api/admin/analytics/{name}?start={today}&end={today}"
            seen = await asyncio.to_thread(_ask_every_worker, url, admin, path, 2)
            assert sorted(how for how, _ in seen.values()) == ["engine", "relay"], seen
            bodies = [body for _, body in seen.values()]
            assert bodies[0] == bodies[1], bodies
            if name == "overview":
                assert bodies[0]["totals"]["signups"] == 4

        # the owner dies: uvicorn starts a new worker, and one of the two takes the engine over
        owner = next(pid for pid, (how, _) in seen.items() if how == "engine")
        os.kill(owner, signal.SIGKILL)
        path = f"/api/admin/analytics/overview?start={today}&end={today}"
        deadline = time.monotonic() + 180
        while True:
            try:
                after = await asyncio.to_thread(_ask_every_worker, url, admin, path, 2, 60)
            except (AssertionError, httpx.HTTPError):  # a 503 or a reset while one takes over
                assert time.monotonic() < deadline
                await asyncio.sleep(1)
                continue
            if owner not in after:
                break
        assert sorted(how for how, _ in after.values()) == ["engine", "relay"], after
        assert [b["totals"]["signups"] for _, b in after.values()] == [4, 4]
    finally:
        stop_process(proc)


def test_decimal_and_dates_in_parameters() -> None:
    params = {"start": dt.date(2026, 1, 1), "amount": Decimal("1.25")}
    assert relay.decode(relay.encode(params)) == params
