"""Portfolio history over HTTP (a real `pull api`), snapshots written by the real workflow on
a Temporal worker: time-weighted %, deposits never a gain, typed errors, idempotent runs."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from temporalio.client import Client

from pull.config import Settings
from pull.worker import build_worker
from tests.portfolio.conftest import call, create_market, fund, order


async def _snapshot(client: Client, queue: str, at: dt.datetime, batch: int = 2) -> Any:
    return await client.execute_workflow(
        "PortfolioSnapshotWorkflow",
        {"kind": "eod", "at": at.isoformat(), "batch": batch},
        id=f"pf-test-{uuid.uuid4().hex}",
        task_queue=queue,
    )


async def test_history_time_weighted_and_snapshots_idempotent(
    api_server: str,
    user_factory: Any,
    kyc_tier: Any,
    sessionmaker: Any,
    temporal_client: Client,
    task_queue: str,
    settings: Settings,
    worker_runtime: Any,
) -> None:
    ticker = await create_market(sessionmaker, taker_fee_bps=0)
    a, b, c, d = [await user_factory() for _ in range(4)]
    for u in (a, b, c, d):
        await kyc_tier(u.id, "standard")
    await fund(sessionmaker, a.id, 100_000)
    for u in (b, c, d):
        await fund(sessionmaker, u.id, 10_000)
    day = dt.datetime.combine(dt.datetime.now(dt.UTC).date(), dt.time(), tzinfo=dt.UTC)
    t1, t2, t3 = day - dt.timedelta(days=3), day - dt.timedelta(days=2), day - dt.timedelta(1)

    async with build_worker(temporal_client, settings, task_queue=task_queue):
        first = await _snapshot(temporal_client, task_queue, t1)
        assert first["users"] == 4 and first["written"] == 4
        # a buys 10 YES at 40 (no fee); the book then quotes 59 / 61: the mark is 60
        await order(api_server, b, ticker=ticker, side="no", action="buy", count=10, no_price=60)
        await order(api_server, a, ticker=ticker, side="yes", action="buy", count=10, yes_price=40)
        await order(api_server, c, ticker=ticker, side="yes", action="buy", count=1, yes_price=59)
        await order(api_server, d, ticker=ticker, side="no", action="buy", count=1, no_price=39)
        await _snapshot(temporal_client, task_queue, t2)
        await fund(sessionmaker, a.id, 100_000)  # a deposit: equity up, no gain
        await _snapshot(temporal_client, task_queue, t3)
        again = await _snapshot(temporal_client, task_queue, t3, batch=3)
        assert again == {**again, "users": 4, "written": 0}  # idempotent per (user, day)

    r = await call(api_server, a, "GET", "/api/v1/portfolio/history", params={"period": "1W"})
    assert r.status_code == 200, r.text
    h = r.json()
    assert h["timeframe"] == "1H"
    assert h["timestamp"][:3] == [int(t.timestamp()) for t in (t1, t2, t3)]
    assert h["equity"] == [1000.0, 1002.0, 2002.0, 2002.0]
    assert h["profit_loss"] == [0.0, 2.0, 2.0, 2.0]
    assert h["profit_loss_pct"] == [0.0, 0.002, 0.002, 0.002]
    assert h["base_value"] == 1000.0
    assert h["cashflow"]["CSD"] == [0.0, 0.0, 1000.0, 0.0]
    assert h["cashflow"]["CSW"] == [0.0, 0.0, 0.0, 0.0]

    daily = await call(
        api_server,
        a,
        "GET",
        "/api/v1/portfolio/history",
        params={"period": "1M", "timeframe": "1D"},
    )
    body = daily.json()
    # the live point shares today's bucket with no stored point: t1, t2, t3, now
    assert len(body["equity"]) == 4 and body["profit_loss_pct"][-1] == 0.002

    one_day = (
        await call(api_server, a, "GET", "/api/v1/portfolio/history", params={"period": "1D"})
    ).json()
    # the base is the last point before the period (t3 is > 1 day old unless it is just past 00:00)
    assert one_day["equity"][-1] == 2002.0 and one_day["profit_loss"][-1] == 0.0


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"period": "2D"}, "INVALID_PERIOD"),
        ({"period": "1D", "timeframe": "1Min"}, "INVALID_TIMEFRAME"),
        ({"period": "1Y", "timeframe": "5Min"}, "TIMEFRAME_NOT_ALLOWED"),
        ({"period": "ALL", "timeframe": "1H"}, "TIMEFRAME_NOT_ALLOWED"),
        ({"period": "x" * 50}, "VALIDATION_ERROR"),
    ],
)
async def test_bad_parameters_are_typed_4xx(
    api_server: str, user_factory: Any, params: dict[str, str], code: str
) -> None:
    user = await user_factory()
    r = await call(api_server, user, "GET", "/api/v1/portfolio/history", params=params)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["code"] == code
