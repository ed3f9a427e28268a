"""Hypothesis: any sequence of batches (over random subsets of markets in random orders, items
drawing their client_order_id from a small pool so that keys collide), replays, cancels and
keyed decreases through the book commands keeps every money invariant, and a key names one
order: the same order again returns the first result, any other order under it is 409."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.exchange import book_commands, service
from pull.exchange.schemas import OrderCreate, OrderDecrease
from pull.identity.schemas import AuthUser
from pull.kit.db import make_engine, make_sessionmaker
from pull.kit.errors import AppError
from tests.exchange.conftest import check_invariants, create_market
from tests.exchange.test_properties import _users

MARKETS = 3
KEYS = ["k0", "k1", "k2", "k3"]

item = st.fixed_dictionaries(
    {
        "side": st.sampled_from(["yes", "no"]),
        "action": st.sampled_from(["buy", "buy", "sell"]),
        "count": st.integers(1, 4),
        "price": st.integers(45, 55),
        "tif": st.sampled_from(["good_till_canceled", "immediate_or_cancel"]),
        "key": st.one_of(st.none(), st.sampled_from(KEYS)),
    }
)
batch = st.fixed_dictionaries(
    {
        "op": st.just("batch"),
        "user": st.integers(0, 2),
        "markets": st.permutations(list(range(MARKETS))).flatmap(
            lambda p: st.integers(1, MARKETS).map(lambda n: p[:n])
        ),
        "items": st.lists(item, min_size=MARKETS, max_size=MARKETS),
    }
)
other = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["replay", "cancel", "decrease"]),
        "user": st.integers(0, 2),
        "pick": st.integers(0, 100),
        "key": st.sampled_from(["d0", "d1"]),
    }
)
flows = st.lists(st.one_of(batch, batch, other), min_size=3, max_size=14)


def _order(it: dict[str, Any], ticker: str) -> OrderCreate:
    body: dict[str, Any] = {
        "ticker": ticker,
        "side": it["side"],
        "action": it["action"],
        "count": it["count"],
        f"{it['side']}_price": it["price"],
        "time_in_force": it["tif"],
    }
    if it["key"] is not None:
        body["client_order_id"] = it["key"]
    return OrderCreate.model_validate(body)


def _fingerprint(o: OrderCreate) -> dict[str, Any]:
    return o.model_dump(mode="json", exclude={"client_order_id"})


async def _flow(settings: Settings, ops: list[dict[str, Any]]) -> None:
    engine = make_engine(settings.database_url, pool_size=2, max_overflow=0)
    maker: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
    try:
        tickers = [await create_market(maker) for _ in range(MARKETS)]
        users = [
            AuthUser(
                id=uid, email=f"{uid}@example.com", role="user", status="active", session_id=None
            )
            for uid in (await _users(maker, settings))[:3]
        ]
        first: dict[tuple[uuid.UUID, str], tuple[dict[str, Any], Any]] = {}
        batches: list[tuple[AuthUser, list[OrderCreate]]] = []
        for op in ops:
            user = users[op["user"]]
            async with maker() as s:
                if op["op"] in ("batch", "replay"):
                    if op["op"] == "batch":
                        orders = [
                            _order(it, tickers[m])
                            for it, m in zip(op["items"], op["markets"], strict=False)
                        ]
                        batches.append((user, orders))
                    elif batches:
                        user, orders = batches[op["pick"] % len(batches)]
                    else:
                        continue
                    results = await book_commands.place_batch(session=s, user=user, orders=orders)
                    for o, r in zip(orders, results, strict=True):
                        if o.client_order_id is None:
                            continue
                        seen = first.get((user.id, o.client_order_id))
                        same = seen is not None and seen[0] == _fingerprint(o)
                        if r.order is not None:
                            assert seen is None or same, "another order under a used key"
                            if seen is None:
                                first[(user.id, o.client_order_id)] = (_fingerprint(o), r.order)
                            else:
                                assert r.order == seen[1], "a replay differs from the first"
                        else:
                            assert r.error is not None
                            assert not same, f"the same order under its key refused: {r.error}"
                            if seen is not None:
                                assert r.error.code == "IDEMPOTENCY_KEY_REUSED", r.error
                else:
                    resting = (
                        await service.list_orders(session=s, user_id=user.id, status="resting")
                    ).items
                    await s.commit()
                    if not resting:
                        continue
                    target = resting[op["pick"] % len(resting)]
                    try:
                        if op["op"] == "cancel":
                            await book_commands.cancel(
                                session=s, user=user, order_id=target.order_id
                            )
                        else:
                            key = f"{op['key']}-{target.order_id.hex[:8]}"
                            data = OrderDecrease(reduce_by=1)
                            one = await book_commands.decrease(
                                session=s,
                                user=user,
                                order_id=target.order_id,
                                data=data,
                                idempotency_key=key,
                            )
                            two = await book_commands.decrease(
                                session=s,
                                user=user,
                                order_id=target.order_id,
                                data=data,
                                idempotency_key=key,
                            )
                            assert two.replayed
                            assert two.order == one.order, "a keyed decrease applied twice"
                    except AppError:
                        pass  # refused (e.g. a decrease to zero of a 1-lot): nothing written
            async with maker() as s:
                await check_invariants(s, tickers)
    finally:
        await engine.dispose()


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=flows)
def test_book_commands_keep_invariants_and_keys_name_one_order(
    settings: Settings, ops: list[dict[str, Any]]
) -> None:
    asyncio.run(_flow(settings, ops))
