"""Group commit of secondary orders: placing a sequence of orders in batches of any size
(`place_orders`, each batch one transaction; a refused batch placed again one order at a time,
as the HTTP batcher does) gives exactly what placing them one at a time gives: the same
orders' states, trades, cash, holds, shares and cost bases. And the HTTP route under
concurrency answers every order once, committed, with the books intact."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.kit.errors import AppError
from pull.kyc import service as kyc
from pull.ledger import service as ledger
from pull.rwa import service as rwa
from pull.rwa.order_batcher import OrderBatcher, Pending
from pull.rwa.providers.sandbox import PsaSandbox
from pull.rwa.schemas import AssetCreate, OfferingCreate
from tests.ledger.conftest import insert_user
from tests.rwa.conftest import RwaEnvFactory
from tests.rwa.test_properties import _books

USERS = 3
PRICE = 100

orders = st.lists(
    st.tuples(
        st.integers(0, USERS - 1),
        st.sampled_from(["buy", "sell"]),
        st.integers(95, 105),
        st.integers(1, 30),
        st.sampled_from(["gtc", "ioc"]),
    ),
    min_size=1,
    max_size=25,
)


async def _market(
    maker: async_sessionmaker[AsyncSession], money: list[int], split: list[int]
) -> tuple[uuid.UUID, str, list[uuid.UUID]]:
    """A trading asset whose USERS holders subscribed `split` shares and have `money` cash."""
    now = dt.datetime.now(dt.UTC)
    async with maker() as s, s.begin():
        admin, second, consignor = await insert_user(s), await insert_user(s), await insert_user(s)
        users = [await insert_user(s) for _ in range(USERS)]
        for user, amount, n in zip(users, money, split, strict=True):
            await kyc.set_tier(session=s, user_id=user, tier="basic", actor_id=None, note=None)
            await ledger.transfer(
                session=s,
                idempotency_key=f"batch:fund:{user}",
                kind="deposit_settled",
                legs=[
                    ledger.Leg(ledger.system_account("bank_clearing"), -(amount + n * PRICE)),
                    ledger.Leg(ledger.user_account(user, "cash"), amount + n * PRICE),
                ],
            )
        asset = await rwa.create_asset(
            session=s,
            graders={"PSA": PsaSandbox()},
            actor_id=admin,
            data=AssetCreate(
                title="batch",
                category="card",
                cert_number="2" + str(uuid.uuid4().int % 10**8).zfill(8) + "0",
                grade="10",
                custodian="vault",
                insured_value_cents=1,
                consignor_id=consignor,
            ),
        )
        offering = await rwa.create_offering(
            session=s,
            actor_id=admin,
            asset_id=asset.id,
            data=OfferingCreate(
                total_shares=sum(split),
                price_cents=PRICE,
                opens_at=now - dt.timedelta(minutes=1),
                closes_at=now + dt.timedelta(hours=1),
                min_raise_cents=sum(split) * PRICE,
                max_per_investor_bps=10_000,
            ),
        )
        await rwa.open_offering(session=s, actor_id=second, offering_id=offering.id)
    for user, n in zip(users, split, strict=True):
        async with maker() as s, s.begin():
            await rwa.subscribe(session=s, user_id=user, offering_id=offering.id, shares=n)
    async with maker() as s, s.begin():
        await rwa.close_offering(session=s, offering_id=offering.id)
        await rwa.settle_subscriptions(session=s, offering_id=offering.id, limit=100)
        await rwa.finalize_offering(session=s, offering_id=offering.id, lockup_seconds=0)
        await rwa.start_trading(session=s, asset_id=asset.id)
    return asset.id, asset.symbol, users


async def _single(
    maker: async_sessionmaker[AsyncSession], asset_id: uuid.UUID, spec: rwa.OrderSpec
) -> str | None:
    """One order in its own transaction; its refusal's code, or None."""
    try:
        async with maker() as s, s.begin():
            await rwa.place_order(
                session=s,
                user_id=spec.user_id,
                asset_id=asset_id,
                side=spec.side,
                price_cents=spec.price_cents,
                quantity=spec.quantity,
                time_in_force=spec.time_in_force,
            )
    except AppError as exc:
        return exc.code
    return None


async def _state(
    maker: async_sessionmaker[AsyncSession],
    asset_id: uuid.UUID,
    symbol: str,
    users: list[uuid.UUID],
) -> dict[str, Any]:
    """Everything placement decides, with users as indexes and orders in placement order."""
    index = {u: i for i, u in enumerate(users)}
    async with maker() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT id, user_id, side, price_cents, quantity, remaining, filled_cents, "
                    "status, cancel_reason FROM rwa_orders WHERE asset_id = :a ORDER BY seq"
                ),
                {"a": asset_id},
            )
        ).all()
        order_index = {r[0]: i for i, r in enumerate(rows)}
        trades = (
            await s.execute(
                text(
                    "SELECT buy_order_id, sell_order_id, price_cents, quantity, taker_side "
                    "FROM rwa_trades WHERE asset_id = :a ORDER BY id"
                ),
                {"a": asset_id},
            )
        ).all()
        money = []
        for u in users:
            b = await ledger.get_balance(session=s, user_id=u)
            shares = await ledger.account_balance(
                session=s, account=ledger.user_account(u, "shares", symbol)
            )
            basis = await s.scalar(
                text(
                    "SELECT cost_basis_cents FROM rwa_positions "
                    "WHERE user_id = :u AND asset_id = :a"
                ),
                {"u": u, "a": asset_id},
            )
            money.append((b.available, b.held, shares, basis or 0))
    return {
        "orders": [(index[r[1]], *r[2:]) for r in rows],
        "trades": [(order_index[t[0]], order_index[t[1]], *t[2:]) for t in trades],
        "money": money,
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=orders,
    money=st.lists(st.integers(0, 5_000), min_size=USERS, max_size=USERS),
    split=st.lists(st.integers(1, 40), min_size=USERS, max_size=USERS),
    cuts=st.lists(st.integers(1, 8), min_size=1, max_size=25),
)
async def test_batches_place_exactly_as_one_at_a_time(
    ops: list[tuple[int, str, int, int, str]],
    money: list[int],
    split: list[int],
    cuts: list[int],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    one, one_symbol, one_users = await _market(sessionmaker, money, split)
    many, many_symbol, many_users = await _market(sessionmaker, money, split)

    def spec(users: list[uuid.UUID], op: tuple[int, str, int, int, str]) -> rwa.OrderSpec:
        who, side, price, qty, tif = op
        return rwa.OrderSpec(users[who], side, price, qty, tif)

    refused_one = [await _single(sessionmaker, one, spec(one_users, op)) for op in ops]

    refused_many: list[str | None] = []
    start, cut = 0, 0
    while start < len(ops):
        size = cuts[cut % len(cuts)]
        cut += 1
        chunk = [spec(many_users, op) for op in ops[start : start + size]]
        start += size
        try:
            async with sessionmaker() as s, s.begin():
                await rwa.place_orders(session=s, asset_id=many, orders=chunk)
            refused_many += [None] * len(chunk)
        except AppError:  # the batcher's fallback: each order on its own
            refused_many += [await _single(sessionmaker, many, o) for o in chunk]
        await _books(sessionmaker)

    assert refused_many == refused_one
    assert await _state(sessionmaker, many, many_symbol, many_users) == await _state(
        sessionmaker, one, one_symbol, one_users
    )


async def test_http_orders_are_group_committed_and_answered_once(
    rwa_env: RwaEnvFactory,
) -> None:
    """64 concurrent orders over HTTP (the batcher on) and a replay of each key: every order
    answered 201 or a typed 409, each key once (replays give the same body), the book never
    crossed, shares conserved, the ledger's books intact."""
    env = await rwa_env()
    sellers = [await env.investor(cash=0) for _ in range(4)]
    buyers = [await env.investor(cash=3_000) for _ in range(4)]
    asset = await env.trading_asset([(s, 20) for s in sellers], price_cents=100)
    aid = asset["id"]
    sent: list[tuple[Any, str, dict[str, Any]]] = []
    for i in range(32):
        for user, side in ((sellers[i % 4], "sell"), (buyers[i % 4], "buy")):
            body = {
                "asset_id": aid,
                "side": side,
                "price_cents": 98 + i % 5,
                "quantity": 1 + i % 3,
                "time_in_force": "ioc" if i % 4 == 0 else "gtc",
            }
            sent.append((user, uuid.uuid4().hex, body))

    async def post(user: Any, key: str, body: dict[str, Any]) -> Any:
        return await env.http.post(
            "/api/v1/rwa/orders",
            json=body,
            headers={**user.headers, "Idempotency-Key": key},
        )

    first = await asyncio.gather(*(post(*o) for o in sent))
    codes = {r.status_code for r in first}
    assert codes <= {201, 409}, [r.text for r in first if r.status_code not in (201, 409)]
    for r in first:
        if r.status_code == 409:
            assert r.json()["error"]["code"] in {"INSUFFICIENT_FUNDS", "INSUFFICIENT_SHARES"}
    again = await asyncio.gather(*(post(*o) for o in sent))
    for a, b in zip(first, again, strict=True):
        if a.status_code == 201:
            assert b.status_code == 201 and b.json() == a.json()
            assert b.headers.get("Idempotent-Replayed") == "true"
    placed = {r.json()["id"] for r in first if r.status_code == 201}
    assert len(placed) == sum(1 for r in first if r.status_code == 201)
    async with env.maker() as s:
        count = await s.scalar(
            text("SELECT count(*) FROM rwa_orders WHERE asset_id = :a"), {"a": aid}
        )
    assert count == len(placed)
    book = await env.get(f"/api/v1/rwa/assets/{aid}/orderbook", sellers[0])
    if book["bids"] and book["asks"]:
        assert book["bids"][0]["price_cents"] < book["asks"][0]["price_cents"]
    total = 0
    for user in sellers + buyers:
        total += (await env.shares(user, aid))[0]
    assert total == 80
    await env.assert_books()


async def test_batcher_refuses_traders_below_the_kyc_tier(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The batch itself reads its traders' KYC tiers (the route no longer reads one per
    order before queuing): an order of a trader below basic is not placed by the batch
    (answered None: the one-order path refuses it 403), the others of the batch are."""
    asset, _, users = await _market(sessionmaker, [5_000] * USERS, [10] * USERS)
    async with sessionmaker() as s, s.begin():
        await kyc.set_tier(session=s, user_id=users[1], tier="none", actor_id=None, note=None)
    batcher = OrderBatcher(sessionmaker, max_batch=32, trading_hours="")
    answers = await asyncio.gather(
        *(
            batcher.place(
                asset,
                Pending(rwa.OrderSpec(u, "buy", 90, 1, "gtc"), uuid.uuid4().hex, {"i": i}),
            )
            for i, u in enumerate(users)
        )
    )
    assert answers[1] is None
    assert answers[0] is not None and answers[2] is not None
    async with sessionmaker() as s:
        who = (
            await s.execute(
                text("SELECT user_id FROM rwa_orders WHERE asset_id = :a AND price_cents = 90"),
                {"a": asset},
            )
        ).scalars()
        assert set(who) == {users[0], users[2]}


async def test_http_order_below_the_kyc_tier_is_refused_403(rwa_env: RwaEnvFactory) -> None:
    """Through the batched route: 403 KYC_REQUIRED, nothing placed, the key not spent."""
    env = await rwa_env()
    seller = await env.investor(cash=0)
    asset = await env.trading_asset([(seller, 5)], price_cents=100)
    unverified = await env.investor(cash=1_000, tier="none")
    key = uuid.uuid4().hex
    refused = await env.order(unverified, asset["id"], "buy", 100, 1, key=key)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "KYC_REQUIRED"
    placed = await env.order(seller, asset["id"], "sell", 100, 1)
    assert placed.status_code == 201, placed.text
    async with env.maker() as s:
        count = await s.scalar(
            text("SELECT count(*) FROM rwa_orders WHERE user_id = :u"), {"u": unverified.id}
        )
    assert count == 0
    await env.assert_books()
