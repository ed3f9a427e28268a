"""`GET /balance` and `GET /leaderboard` from memory (pull.rewards.read_cache) are never stale
after a commit: every kind of points movement shows in the next answer at once, in this
process and on another `pull api` process; and a repeated read does no database work."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from pull.rewards import service
from tests.conftest import Services, UserFactory, start_api_process, stop_process
from tests.rewards.conftest import RewardsEnv


async def _deposit(rw: RewardsEnv, user_id: uuid.UUID, amount: int) -> None:
    await rw.emit(
        "funding.deposit_settled",
        {"deposit_id": str(uuid.uuid4()), "user_id": str(user_id), "amount": amount},
    )
    await rw.drain()


async def _deposit_rule(rw: RewardsEnv) -> None:
    await rw.rule(
        key="deposit",
        event_type="funding.deposit_settled",
        formula={"type": "per_unit", "field": "amount", "per": 100, "points": 1},
    )


async def test_every_movement_shows_in_the_next_balance_and_repeats_are_served_from_memory(
    rw: RewardsEnv, user_factory: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = 0
    real = service.balance

    async def counted(**kw: Any) -> Any:
        nonlocal reads
        reads += 1
        return await real(**kw)

    monkeypatch.setattr(service, "balance", counted)
    await _deposit_rule(rw)
    user = await user_factory()
    first = await asyncio.gather(*(rw.balance(user) for _ in range(10)))
    assert {b["available"] for b in first} == {0}
    for _ in range(5):
        assert (await rw.balance(user))["available"] == 0
    assert reads == 1  # concurrent misses read once; the repeats came from memory

    await _deposit(rw, user.id, 10_000)  # earning (the batched consumer)
    assert (await rw.balance(user))["available"] == 100
    assert (await rw.balance(user))["lifetime_earned"] == 100
    await rw.grant(user, 50)  # manual adjustment
    assert (await rw.balance(user))["available"] == 150
    item = await rw.item(name="mug", kind="sweepstakes", points_price=40, stock=5)
    r = await rw.redeem(user, item["id"])  # the hold
    assert r.status_code == 201, r.text
    body = await rw.balance(user)
    assert body["available"] == 110 and body["pending"] == 40
    async with rw.worker():
        await rw.wait_redemption(user, r.json()["id"], "fulfilled")
    settled = await rw.balance(user)  # the workflow's settlement (another unit of work)
    assert settled["pending"] == 0 and settled["lifetime_redeemed"] == 40
    reads_before = reads
    await rw.balance(user)
    assert reads == reads_before  # cached again once nothing moves
    await rw.assert_books()


async def test_the_leaderboard_answer_changes_with_the_next_earning(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    await _deposit_rule(rw)
    a, b = await user_factory(), await user_factory()
    await _deposit(rw, a.id, 5_000)
    url = "/api/v1/rewards/leaderboard?period=weekly&limit=100"
    first = (await rw.http.get(url, headers=b.headers)).json()
    assert first["me"] is None
    assert (await rw.http.get(url, headers=b.headers)).json() == first  # (from memory)
    await _deposit(rw, b.id, 7_000)
    after = (await rw.http.get(url, headers=b.headers)).json()
    assert after["me"] is not None and after["me"]["points"] == 70
    mine = [i for i in after["items"] if i["is_me"]]
    assert mine and mine[0]["points"] == 70


async def test_another_api_process_sees_a_commit_at_once(
    rw: RewardsEnv, user_factory: UserFactory, services: Services
) -> None:
    await _deposit_rule(rw)
    user = await user_factory()
    proc, url = start_api_process(services, RATE_LIMIT_ENABLED="false")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as other:

            async def available() -> int:
                r = await other.get("/api/v1/rewards/balance", headers=user.headers)
                assert r.status_code == 200, r.text
                return int(r.json()["available"])

            for _ in range(3):  # the other process's answer is cached now
                assert await available() == 0
            await rw.grant(user, 25)  # committed through this process's request
            assert await available() == 25
            await _deposit(rw, user.id, 1_000)  # committed by the relay's unit of work
            assert await available() == 35
    finally:
        stop_process(proc)


async def test_a_balance_from_memory_opens_no_database_session(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    """A cached /balance costs what /leaderboard costs: no session built, closed or committed
    per request (only the miss, and a request that records a device, open one)."""
    user = await user_factory()
    state = rw.app.state
    real = state.sessionmaker
    opened = 0

    def counting(*args: Any, **kw: Any) -> Any:
        nonlocal opened
        opened += 1
        return real(*args, **kw)

    await rw.grant(user, 30)
    assert (await rw.balance(user))["available"] == 30  # the miss: read and kept
    state.sessionmaker = counting  # (starlette's State: monkeypatch cannot undo it)
    try:
        for _ in range(5):
            assert (await rw.balance(user))["available"] == 30
        assert opened == 0
        r = await rw.http.get(
            "/api/v1/rewards/balance", headers={**user.headers, "X-Device-Fingerprint": "dev-1"}
        )
        assert r.status_code == 200 and r.json()["available"] == 30
        assert opened >= 1  # the device is written through a session of its own
    finally:
        state.sessionmaker = real
    await rw.grant(user, 5)  # a change after the device write still shows at once
    assert (await rw.balance(user))["available"] == 35
