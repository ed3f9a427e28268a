"""Property tests: random order flow from many users keeps the money invariants after every
step, sequentially (hypothesis) and under concurrency (parallel HTTP clients)."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.exchange import service
from pull.exchange.schemas import OrderAmend, OrderCreate, OrderDecrease
from pull.identity import service as identity
from pull.kit.db import make_engine, make_sessionmaker
from pull.kit.errors import AppError
from pull.kyc import service as kyc
from tests.exchange.conftest import check_invariants, create_market, fund

USERS = 5

place_op = st.fixed_dictionaries(
    {
        "op": st.just("place"),
        "user": st.integers(0, USERS - 1),
        "side": st.sampled_from(["yes", "no"]),
        "action": st.sampled_from(["buy", "buy", "sell"]),
        "count": st.integers(1, 15),
        "price": st.integers(1, 99),
        "tif": st.sampled_from(
            ["good_till_canceled", "good_till_canceled", "immediate_or_cancel", "fill_or_kill"]
        ),
        "market": st.booleans(),
        "post_only": st.booleans(),
        "reduce_only": st.booleans(),
        "stp": st.sampled_from(["taker_at_cross", "maker"]),
    }
)
book_op = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["cancel", "amend", "decrease"]),
        "pick": st.integers(0, 1000),
        "price": st.integers(1, 99),
        "count": st.integers(1, 15),
    }
)
flows = st.lists(st.one_of(place_op, place_op, place_op, book_op), min_size=5, max_size=40)


def _order(op: dict[str, Any], ticker: str) -> OrderCreate:
    is_market = op["market"] and op["tif"] != "good_till_canceled"
    price_field = "yes_price" if op["side"] == "yes" else "no_price"
    body: dict[str, Any] = {
        "ticker": ticker,
        "side": op["side"],
        "action": op["action"],
        "count": op["count"],
        "type": "market" if is_market else "limit",
        "time_in_force": op["tif"],
        "self_trade_prevention_type": op["stp"],
        "post_only": op["post_only"] and op["tif"] == "good_till_canceled" and not is_market,
        "reduce_only": op["reduce_only"] and not op["post_only"],
    }
    if not is_market:
        body[price_field] = op["price"]
    return OrderCreate(**body)


async def _users(maker: async_sessionmaker[AsyncSession], settings: Settings) -> list[uuid.UUID]:
    env = identity.IdentityEnv.from_settings(settings)
    ids = []
    async with maker() as s, s.begin():
        for _ in range(USERS):
            user = await identity.create_user(
                session=s,
                env=env,
                email=f"prop-{uuid.uuid4().hex[:12]}@example.com",
                password="Correct-Horse-9-Battery",
            )
            await kyc.set_tier(
                session=s, user_id=user.id, tier="enhanced", actor_id=None, note="test"
            )
            ids.append(user.id)
    for uid in ids:
        await fund(maker, uid, 20_000)
    return ids


async def _flow(settings: Settings, ops: list[dict[str, Any]]) -> None:
    engine = make_engine(settings.database_url, pool_size=2, max_overflow=0)
    maker = make_sessionmaker(engine)
    try:
        ticker = await create_market(maker, maker_fee_bps=random.choice([0, 175]))
        users = await _users(maker, settings)
        for op in ops:
            try:
                async with maker() as s, s.begin():
                    if op["op"] == "place":
                        await service.create_order(
                            session=s, user_id=users[op["user"]], data=_order(op, ticker)
                        )
                    else:
                        resting = [
                            o
                            for uid in users
                            for o in (
                                await service.list_orders(
                                    session=s, user_id=uid, ticker=ticker, status="resting"
                                )
                            ).items
                        ]
                        if not resting:
                            continue
                        o = resting[op["pick"] % len(resting)]
                        if op["op"] == "cancel":
                            await service.cancel_order(
                                session=s, user_id=o.user_id, order_id=o.order_id
                            )
                        elif op["op"] == "decrease":
                            await service.decrease_order(
                                session=s,
                                user_id=o.user_id,
                                order_id=o.order_id,
                                data=OrderDecrease(reduce_to=o.remaining_count // 2),
                            )
                        else:
                            price = {"yes_price" if o.side == "yes" else "no_price": op["price"]}
                            await service.amend_order(
                                session=s,
                                user_id=o.user_id,
                                order_id=o.order_id,
                                data=OrderAmend(count=o.fill_count + op["count"], **price),
                            )
            except AppError:
                pass  # refused: the transaction rolled back
            async with maker() as s:
                await check_invariants(s, [ticker])
    finally:
        await engine.dispose()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=flows)
def test_random_order_flow_keeps_invariants(settings: Settings, ops: list[dict[str, Any]]) -> None:
    asyncio.run(_flow(settings, ops))


async def test_parallel_orders_on_one_market(
    api_server: str,
    trader: Any,
    market_factory: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """16 clients, each on its own connection, fire 25 random orders at one market at once."""
    ticker = await market_factory()
    users = [await trader(cents=50_000) for _ in range(16)]
    rng = random.Random(7)
    statuses: list[int] = []

    async def client(user: Any) -> None:
        async with httpx.AsyncClient(base_url=api_server, headers=user.headers, timeout=30) as c:
            for _ in range(25):
                side = rng.choice(["yes", "no"])
                body = {
                    "ticker": ticker,
                    "side": side,
                    "action": rng.choice(["buy", "buy", "buy", "sell"]),
                    "count": rng.randint(1, 10),
                    f"{side}_price": rng.randint(35, 65),
                    "time_in_force": rng.choice(["good_till_canceled", "immediate_or_cancel"]),
                }
                r = await c.post("/api/v1/orders", json=body)
                statuses.append(r.status_code)
                if r.status_code == 201 and r.json()["status"] == "resting" and rng.random() < 0.2:
                    d = await c.delete(f"/api/v1/orders/{r.json()['order_id']}")
                    statuses.append(d.status_code)

    await asyncio.gather(*(client(u) for u in users))
    assert all(s < 500 for s in statuses), sorted(set(statuses))
    assert statuses.count(201) > 200
    async with sessionmaker() as s:
        await check_invariants(s, [ticker])
        m = await service.get_market(session=s, ticker=ticker)
        assert m.volume > 0
