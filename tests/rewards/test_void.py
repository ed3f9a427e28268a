"""A voided exchange market takes back the points its trades earned (the exchange has no
per-trade bust; a void is how trades are undone), through the real order and resolve APIs and
the relay. And the tier multiplier of an event is its tier as of that event, inside a batch."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from pull.kit.db import utcnow
from pull.rewards import consumer
from tests.conftest import KycTierSetter, TestUser, UserFactory
from tests.exchange.conftest import create_market, fund
from tests.rewards.conftest import RewardsEnv


async def _trader(rw: RewardsEnv, user_factory: UserFactory, kyc_tier: KycTierSetter) -> TestUser:
    user = await user_factory()
    await kyc_tier(user.id, "standard")
    await fund(rw.maker, user.id, 100_000)
    return user


async def _order(rw: RewardsEnv, user: TestUser, ticker: str, **body: Any) -> dict[str, Any]:
    r = await rw.http.post(
        "/api/v1/orders",
        json={"ticker": ticker, "action": "buy", "count": 10, **body},
        headers=user.headers,
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_a_voided_market_reverses_its_trades_points(
    rw: RewardsEnv, user_factory: UserFactory, kyc_tier: KycTierSetter
) -> None:
    await rw.rule(
        key="void-contracts",
        event_type="exchange.trade",
        formula={"type": "per_unit", "field": "contracts", "per": 1, "points": 3},
    )
    maker, taker = (
        await _trader(rw, user_factory, kyc_tier),
        await _trader(rw, user_factory, kyc_tier),
    )
    voided, kept = await create_market(rw.maker), await create_market(rw.maker)
    for ticker in (voided, kept):
        await _order(rw, maker, ticker, side="yes", yes_price=40)
        filled = await _order(rw, taker, ticker, side="no", no_price=60)
        assert filled["status"] == "executed", filled
    await rw.drain()
    assert (await rw.balance(maker))["available"] == 2 * 30
    assert (await rw.balance(taker))["available"] == 2 * 30

    r = await rw.http.post(
        f"/api/admin/markets/{voided}/resolve", json={"result": "void"}, headers=rw.admin.headers
    )
    assert r.status_code == 200, r.text
    # The settlement (paying the void's escrow back) is the exchange's, tested there; no
    # workflow of it is started here, so no later test's worker on this queue picks it up.
    async with rw.maker() as s, s.begin():
        await s.execute(
            text(
                "UPDATE outbox_events SET delivered_at = now() "
                "WHERE topic = 'temporal.start' AND key = :k AND delivered_at IS NULL"
            ),
            {"k": f"settle-{voided}"},
        )
    await rw.drain()
    for user in (maker, taker):
        body = await rw.balance(user)
        assert body["available"] == 30, body  # the kept market's trade only
        assert body["qualifying_points"] == 30
        assert body["lifetime_earned"] == 30
    # A trade of the voided market relayed after the void (a retried event) earns nothing.
    await rw.emit(
        "exchange.trade",
        {
            "ticker": voided,
            "order_id": str(uuid.uuid4()),
            "user_id": str(taker.id),
            "fills": [{"count": 5, "taker_fee": 0, "maker_fee": 0}],
        },
    )
    await rw.drain()
    assert (await rw.balance(taker))["available"] == 30
    # The leaderboard nets the reversal too (rebuilt from the ledger).
    r = await rw.http.post("/api/admin/rewards/leaderboard/rebuild", headers=rw.admin.headers)
    assert r.status_code in (200, 204), r.text
    r = await rw.http.get("/api/v1/rewards/leaderboard?period=weekly", headers=taker.headers)
    assert r.status_code == 200, r.text
    assert r.json()["me"]["points"] == 30
    await rw.assert_books()


async def test_a_tier_reached_inside_a_batch_applies_to_the_next_event(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    """Deposits of 900, 200 and 100 points in one batch (silver at 1,000, x1.1): the first
    two at bronze, the third at silver, as one event at a time would give."""
    await rw.rule(
        key="tier-deposit",
        event_type="funding.deposit_settled",
        formula={"type": "per_unit", "field": "amount", "per": 100, "points": 1},
    )
    user = await user_factory()
    base = 5 * 10**15 + uuid.uuid4().int % 10**12 * 1_000
    events = [
        consumer.EventIn(
            base + i,
            "funding.deposit_settled",
            {"deposit_id": f"tier-{base}-{i}", "user_id": str(user.id), "amount": cents},
            utcnow(),
        )
        for i, cents in enumerate((90_000, 20_000, 10_000))
    ]
    assert await consumer.consume(rw.maker, events, rw.settings) == {}
    body = await rw.balance(user)
    assert body["tier"] == "silver", body
    assert body["available"] == 900 + 200 + 110, body
    await rw.assert_books()
