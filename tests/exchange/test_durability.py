"""An acknowledged order is durable, and a market's writes are correct from several processes.

- Two `pull api` processes take orders for the same market at once: every invariant holds and
  every answered order is in the database as answered.
- A `pull api` process is SIGKILLed under load: every order it answered 2xx is in the database
  with its fills and its ledger transfer, nothing is half-written (an order's fill count is the
  sum of its fills, holds equal resting collateral), and the book a restarted process serves
  equals the one the database holds.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Services, start_api_process, stop_process
from tests.exchange.conftest import check_invariants

Maker = async_sessionmaker[AsyncSession]


def _order(ticker: str) -> dict[str, Any]:
    side = random.choice(["yes", "no"])
    return {
        "ticker": ticker,
        "side": side,
        "action": "buy",
        "count": random.randint(1, 5),
        f"{side}_price": random.randint(45, 55),
        "time_in_force": random.choice(["good_till_canceled", "immediate_or_cancel"]),
        "client_order_id": uuid.uuid4().hex,
    }


async def _pound(
    url: str, users: list[Any], ticker: str, until: list[float], acked: dict[str, dict[str, Any]]
) -> list[int]:
    """Send orders until `until[0]`; record every 2xx answer by client_order_id."""
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:

        async def client(user: Any) -> None:
            while time.monotonic() < until[0]:
                body = _order(ticker)
                try:
                    r = await c.post("/api/v1/orders", json=body, headers=user.headers)
                except httpx.HTTPError:
                    statuses.append(0)  # the process died under us: not acknowledged
                    await asyncio.sleep(0.05)
                    continue
                statuses.append(r.status_code)
                if r.status_code < 300:
                    acked[body["client_order_id"]] = r.json()

        await asyncio.gather(*(client(u) for u in users))
    return statuses


async def _check_acknowledged(s: AsyncSession, acked: dict[str, dict[str, Any]]) -> None:
    """Every acknowledged order is in the database as answered, with its fills and money."""
    rows = {
        r.client_order_id: r
        for r in (
            await s.execute(
                text(
                    "SELECT o.client_order_id, o.id, o.fill_count, o.initial_count, o.status, "
                    "(SELECT coalesce(sum(f.count), 0) FROM exchange_fills f "
                    " WHERE f.order_id = o.id AND f.is_taker) AS taker_fills, "
                    "(SELECT count(*) FROM ledger_transfers t "
                    " WHERE t.reference = 'order:' || o.id::text) AS transfers "
                    "FROM exchange_orders o WHERE o.client_order_id = ANY(:ids)"
                ),
                {"ids": list(acked)},
            )
        ).all()
    }
    missing = [k for k in acked if k not in rows]
    assert not missing, f"{len(missing)} acknowledged orders are not in the database"
    for key, answer in acked.items():
        row = rows[key]
        assert str(row.id) == answer["order_id"]
        # what the taker filled when it was answered is all there, fills included
        assert row.fill_count >= answer["fill_count"]
        assert row.taker_fills == answer["fill_count"], (key, row.taker_fills, answer)
        if answer["fill_count"] or answer["status"] == "resting":
            assert row.transfers >= 1, f"{key}: no ledger transfer for a filled/resting buy"
    # nothing half-written: every order's fill count is the sum of its fills (both roles)
    torn = await s.scalar(
        text(
            "SELECT count(*) FROM exchange_orders o WHERE o.fill_count <> "
            "(SELECT coalesce(sum(f.count), 0) FROM exchange_fills f WHERE f.order_id = o.id)"
        )
    )
    assert torn == 0, f"{torn} orders whose fill count differs from their fills"


async def _db_book(s: AsyncSession, ticker: str) -> dict[str, list[list[int]]]:
    rows = (
        await s.execute(
            text(
                "SELECT is_bid, yes_price, sum(remaining_count) FROM exchange_orders "
                "WHERE ticker = :t AND status = 'resting' GROUP BY is_bid, yes_price"
            ),
            {"t": ticker},
        )
    ).all()
    yes = sorted(([p, int(n)] for bid, p, n in rows if bid), reverse=True)
    no = sorted(([100 - p, int(n)] for bid, p, n in rows if not bid), reverse=True)
    return {"yes": yes, "no": no}


def _levels(book: dict[str, Any], side: str) -> list[list[int]]:
    return sorted(([int(p), int(n)] for p, n in book.get(side) or []), reverse=True)


async def test_two_processes_taking_orders_for_one_market_stay_correct(
    services: Services, trader: Any, market_factory: Any, sessionmaker: Maker
) -> None:
    ticker = await market_factory(maker_fee_bps=175)
    users = [await trader(cents=200_000) for _ in range(8)]
    procs = [start_api_process(services, RATE_LIMIT_ENABLED="false") for _ in range(2)]
    acked: dict[str, dict[str, Any]] = {}
    try:
        until = [time.monotonic() + 12]
        statuses = await asyncio.gather(
            _pound(procs[0][1], users[:4], ticker, until, acked),
            _pound(procs[1][1], users[4:], ticker, until, acked),
        )
    finally:
        for proc, _url in procs:
            stop_process(proc)
    flat = [code for part in statuses for code in part]
    assert not [c for c in flat if c >= 500 or c == 0], sorted(set(flat))
    assert len(acked) >= 20, f"only {len(acked)} orders answered"
    async with sessionmaker() as s:
        await check_invariants(s, [ticker])
        await _check_acknowledged(s, acked)
        trades = await s.scalar(
            text("SELECT count(*) FROM exchange_trades WHERE ticker = :t"), {"t": ticker}
        )
    assert trades and trades > 0, "the two processes' orders never met"


async def test_sigkill_under_load_loses_no_acknowledged_order(
    services: Services, trader: Any, market_factory: Any, sessionmaker: Maker
) -> None:
    ticker = await market_factory(maker_fee_bps=175)
    users = [await trader(cents=200_000) for _ in range(12)]
    proc, url = start_api_process(services, API_WORKERS="2", RATE_LIMIT_ENABLED="false")
    acked: dict[str, dict[str, Any]] = {}
    try:
        until = [time.monotonic() + 30]
        load = asyncio.create_task(_pound(url, users, ticker, until, acked))
        deadline = time.monotonic() + 25
        while len(acked) < 40 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # the server and its workers, mid-request
        proc.wait(10)
        killed_at = len(acked)
        until[0] = 0.0
        await load
    finally:
        stop_process(proc)
    assert killed_at >= 10, f"only {killed_at} orders answered before the kill"
    async with sessionmaker() as s:
        await _check_acknowledged(s, acked)
        await check_invariants(s, [ticker])
        want = await _db_book(s, ticker)
    proc, url = start_api_process(services, RATE_LIMIT_ENABLED="false")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            h = users[0].headers
            book = (await c.get(f"/api/v1/markets/{ticker}/orderbook", headers=h)).json()
            market = (await c.get(f"/api/v1/markets/{ticker}", headers=h)).json()
    finally:
        stop_process(proc)
    assert {"yes": _levels(book, "yes"), "no": _levels(book, "no")} == want
    best_bid = want["yes"][0][0] if want["yes"] else None
    best_no = want["no"][0][0] if want["no"] else None
    assert market["yes_bid"] == best_bid
    assert market["yes_ask"] == (None if best_no is None else 100 - best_no)
