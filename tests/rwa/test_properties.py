"""Property: any sequence of subscriptions (accepted or refused; one at a time, or in
concurrent chunks through the HTTP route's group commit) followed by a close (funded,
under the minimum, or canceled), settled in batches of any size, keeps cash and shares
conserved: every user's cash + holds equals what it had less what it paid, shares outstanding
equal the sum of holdings, the offering escrow ends empty, the consignor and fee revenue get
exactly the raise less and the fee, no user goes below zero, and the trial balance is zero."""

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
from pull.rwa.offerings import escrow_account, sourcing_fee
from pull.rwa.providers.sandbox import PsaSandbox
from pull.rwa.schemas import AssetCreate, BuyoutCreate, OfferingCreate
from pull.rwa.subscription_batcher import SubscriptionBatcher, SubscriptionRequest
from tests.ledger.conftest import insert_user

USERS = 3
terms = st.fixed_dictionaries(
    {
        "total_shares": st.integers(1, 300),
        "price_cents": st.integers(1, 5_000),
        "min_fraction": st.integers(1, 100),  # % of the whole offering needed
        "cap_bps": st.integers(1, 10_000),
        "fee_bps": st.integers(0, 5_000),
    }
)
subscriptions = st.lists(
    st.tuples(st.integers(0, USERS - 1), st.integers(1, 120)), min_size=0, max_size=25
)
cash = st.lists(st.integers(0, 300_000), min_size=USERS, max_size=USERS)
ending = st.sampled_from(["close", "cancel"])
batch = st.integers(1, 7)


async def _books(maker: async_sessionmaker[AsyncSession]) -> None:
    async with maker() as s:
        tb = await ledger.trial_balance(session=s)
        assert tb.balanced, tb
        negative = await s.scalar(
            text(
                "SELECT count(*) FROM ledger_accounts "
                "WHERE owner_id IS NOT NULL AND balance - pending_debits < 0"
            )
        )
        assert negative == 0


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    t=terms,
    subs=subscriptions,
    money=cash,
    end=ending,
    size=batch,
    batched=st.booleans(),
    cuts=st.lists(st.integers(1, 8), min_size=1, max_size=10),
)
async def test_offerings_conserve_cash_and_shares(
    t: dict[str, int],
    subs: list[tuple[int, int]],
    money: list[int],
    end: str,
    size: int,
    batched: bool,
    cuts: list[int],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    now = dt.datetime.now(dt.UTC)
    async with sessionmaker() as s, s.begin():
        admin, second, consignor = await insert_user(s), await insert_user(s), await insert_user(s)
        users = [await insert_user(s) for _ in range(USERS)]
        for user, amount in zip(users, money, strict=True):
            await kyc.set_tier(session=s, user_id=user, tier="basic", actor_id=None, note=None)
            if amount:
                await ledger.transfer(
                    session=s,
                    idempotency_key=f"prop:fund:{user}",
                    kind="deposit_settled",
                    legs=[
                        ledger.Leg(ledger.system_account("bank_clearing"), -amount),
                        ledger.Leg(ledger.user_account(user, "cash"), amount),
                    ],
                )
        asset = await rwa.create_asset(
            session=s,
            graders={"PSA": PsaSandbox()},
            actor_id=admin,
            data=AssetCreate(
                title="prop",
                category="card",
                cert_number="1" + str(uuid.uuid4().int % 10**8).zfill(8) + "0",
                grade="10",
                custodian="vault",
                insured_value_cents=1,
                consignor_id=consignor,
            ),
        )
        whole = t["total_shares"] * t["price_cents"]
        offering = await rwa.create_offering(
            session=s,
            actor_id=admin,
            asset_id=asset.id,
            data=OfferingCreate(
                total_shares=t["total_shares"],
                price_cents=t["price_cents"],
                opens_at=now - dt.timedelta(minutes=1),
                closes_at=now + dt.timedelta(hours=1),
                min_raise_cents=max(1, whole * t["min_fraction"] // 100),
                max_per_investor_bps=t["cap_bps"],
                sourcing_fee_bps=t["fee_bps"],
            ),
        )
        await rwa.open_offering(session=s, actor_id=second, offering_id=offering.id)
        fees_before = await ledger.account_balance(
            session=s, account=ledger.system_account("fee_revenue")
        )
    paid = dict.fromkeys(users, 0)
    shares = dict.fromkeys(users, 0)

    async def one(who: int, n: int) -> None:
        try:
            async with sessionmaker() as s, s.begin():
                sub = await rwa.subscribe(
                    session=s, user_id=users[who], offering_id=offering.id, shares=n
                )
        except AppError as exc:
            assert exc.code in {
                "INSUFFICIENT_FUNDS",
                "INVESTOR_CAP_EXCEEDED",
                "OFFERING_SOLD_OUT",
            }, exc.code
            return
        paid[users[who]] += sub.amount_cents
        shares[users[who]] += n

    if not batched:
        for who, n in subs:
            await one(who, n)
            await _books(sessionmaker)
    else:
        # The HTTP route's group commit: chunks of concurrent subscriptions, one batch each
        # (split when refused); what a batch does not take goes on the one-at-a-time path.
        batcher = SubscriptionBatcher(sessionmaker, max_batch=64)
        start = 0
        for cut in range(len(subs)):
            chunk = subs[start : start + cuts[cut % len(cuts)]]
            start += len(chunk)
            if not chunk:
                break
            answers = await asyncio.gather(
                *(
                    batcher.subscribe(
                        offering.id,
                        SubscriptionRequest(users[who], n, uuid.uuid4().hex, {"shares": n}),
                    )
                    for who, n in chunk
                )
            )
            for (who, n), body in zip(chunk, answers, strict=True):
                if body is None:
                    await one(who, n)
                else:
                    assert body["shares"] == n and body["status"] == "held"
                    paid[users[who]] += body["amount_cents"]
                    shares[users[who]] += n
            await _books(sessionmaker)
        async with sessionmaker() as s:
            row = (
                await s.execute(
                    text(
                        "SELECT shares_subscribed, investors, "
                        "(SELECT coalesce(sum(shares), 0) FROM rwa_offering_investors "
                        " WHERE offering_id = :o), "
                        "(SELECT coalesce(sum(shares), 0) FROM rwa_subscriptions "
                        " WHERE offering_id = :o AND status = 'held'), "
                        "(SELECT count(*) FROM rwa_offering_investors "
                        " WHERE offering_id = :o AND shares > 0) "
                        "FROM rwa_offerings WHERE id = :o"
                    ),
                    {"o": offering.id},
                )
            ).one()
        assert row[0] == row[2] == row[3] == sum(shares.values())
        assert row[1] == row[4] == sum(1 for u in users if shares[u])
        cap = max(1, t["total_shares"] * t["cap_bps"] // 10_000)
        assert all(v <= cap for v in shares.values())
    subscribed = sum(shares.values())
    assert subscribed <= t["total_shares"]
    async with sessionmaker() as s, s.begin():
        if end == "cancel":
            await rwa.cancel_offering(
                session=s, actor_id=admin, offering_id=offering.id, reason="prop"
            )
        outcome = await rwa.close_offering(session=s, offering_id=offering.id)
    raised = subscribed * t["price_cents"]
    funded = end == "close" and raised >= max(1, whole * t["min_fraction"] // 100)
    assert outcome == ("funded" if funded else "failed" if end == "close" else "canceled")
    while True:
        async with sessionmaker() as s, s.begin():
            done = await rwa.settle_subscriptions(session=s, offering_id=offering.id, limit=size)
        await _books(sessionmaker)
        if done == 0:
            break
    async with sessionmaker() as s, s.begin():
        state = await rwa.finalize_offering(session=s, offering_id=offering.id, lockup_seconds=0)
        assert state == ("locked" if funded else "canceled")
        # finalizing twice changes nothing
        await rwa.finalize_offering(session=s, offering_id=offering.id, lockup_seconds=0)
    await _books(sessionmaker)
    async with sessionmaker() as s:
        bal: dict[uuid.UUID, Any] = {
            u: await ledger.get_balance(session=s, user_id=u) for u in users
        }
        held_shares = {
            u: await ledger.account_balance(
                session=s, account=ledger.user_account(u, "shares", asset.symbol)
            )
            for u in users
        }
        outstanding = await rwa.shares_outstanding(session=s, currency=asset.symbol)
        escrow = await ledger.account_balance(session=s, account=escrow_account(offering.id))
        consignor_cash = (await ledger.get_balance(session=s, user_id=consignor)).available
        fees = (
            await ledger.account_balance(session=s, account=ledger.system_account("fee_revenue"))
            - fees_before
        )
    fee = sourcing_fee(raised, t["fee_bps"]) if funded else 0
    for user, start in zip(users, money, strict=True):
        assert bal[user].held == 0
        assert bal[user].available == start - (paid[user] if funded else 0)
        assert held_shares[user] == (shares[user] if funded else 0)
    assert outstanding == sum(held_shares.values()) == (subscribed if funded else 0)
    assert escrow == 0
    assert consignor_cash == (raised - fee if funded else 0)
    assert fees == fee


order_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("order"),
            st.integers(0, USERS - 1),
            st.sampled_from(["buy", "sell"]),
            st.integers(90, 110),
            st.integers(1, 40),
            st.sampled_from(["gtc", "ioc"]),
        ),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
    ),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=order_ops,
    money=cash,
    split=st.lists(st.integers(0, 60), min_size=USERS, max_size=USERS),
    sale=st.one_of(st.none(), st.integers(1, 10**7)),
    yes=st.lists(st.booleans(), min_size=USERS, max_size=USERS),
    batch_size=batch,
)
async def test_trading_buyout_and_distribution_conserve_cash_and_shares(
    ops: list[tuple[Any, ...]],
    money: list[int],
    split: list[int],
    sale: int | None,
    yes: list[bool],
    batch_size: int,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Random orders and cancels on a trading asset, then maybe a buyout (random price and
    votes) settled and distributed in batches of any size: each user's cash + held and shares +
    shares in open sells are conserved in total, outstanding = holdings + the order escrow, a
    resting buy holds exactly remaining x limit, the book is never crossed; a passed buyout
    pays every holder floor(price x shares / outstanding), retires every share, leaves the
    sale account empty and only the rounding remainder (< 1 cent a holder) to revenue; no user
    goes negative and the trial balance is zero after every step."""
    now = dt.datetime.now(dt.UTC)
    price = 100
    split = [n or 1 for n in split]
    async with sessionmaker() as s, s.begin():
        admin, second, consignor = await insert_user(s), await insert_user(s), await insert_user(s)
        users = [await insert_user(s) for _ in range(USERS)]
        for user, amount, n in zip(users, money, split, strict=True):
            await kyc.set_tier(session=s, user_id=user, tier="basic", actor_id=None, note=None)
            await ledger.transfer(
                session=s,
                idempotency_key=f"prop:fund:{user}",
                kind="deposit_settled",
                legs=[
                    ledger.Leg(ledger.system_account("bank_clearing"), -(amount + n * price)),
                    ledger.Leg(ledger.user_account(user, "cash"), amount + n * price),
                ],
            )
        asset = await rwa.create_asset(
            session=s,
            graders={"PSA": PsaSandbox()},
            actor_id=admin,
            data=AssetCreate(
                title="prop",
                category="card",
                cert_number="1" + str(uuid.uuid4().int % 10**8).zfill(8) + "0",
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
                price_cents=price,
                opens_at=now - dt.timedelta(minutes=1),
                closes_at=now + dt.timedelta(hours=1),
                min_raise_cents=sum(split) * price,
                max_per_investor_bps=10_000,
            ),
        )
        await rwa.open_offering(session=s, actor_id=second, offering_id=offering.id)
    for user, n in zip(users, split, strict=True):
        async with sessionmaker() as s, s.begin():
            await rwa.subscribe(session=s, user_id=user, offering_id=offering.id, shares=n)
    async with sessionmaker() as s, s.begin():
        assert await rwa.close_offering(session=s, offering_id=offering.id) == "funded"
        await rwa.settle_subscriptions(session=s, offering_id=offering.id, limit=100)
        await rwa.finalize_offering(session=s, offering_id=offering.id, lockup_seconds=0)
        assert await rwa.start_trading(session=s, asset_id=asset.id) == "trading"
    cash_total = sum(money)
    placed: list[uuid.UUID] = []
    for op in ops:
        try:
            async with sessionmaker() as s, s.begin():
                if op[0] == "order":
                    _, who, side, limit, qty, tif = op
                    order = await rwa.place_order(
                        session=s,
                        user_id=users[who],
                        asset_id=asset.id,
                        side=side,
                        price_cents=limit,
                        quantity=qty,
                        time_in_force=tif,
                    )
                    placed.append(order.id)
                elif placed:
                    target = placed[op[1] % len(placed)]
                    owner = users[0]
                    async with sessionmaker() as r:
                        for u in users:
                            try:
                                await rwa.get_order(session=r, user_id=u, order_id=target)
                                owner = u
                            except AppError:
                                continue
                    await rwa.cancel_order(session=s, user_id=owner, order_id=target)
        except AppError as exc:
            assert exc.code in {"INSUFFICIENT_FUNDS", "INSUFFICIENT_SHARES", "INVALID_STATE"}, (
                exc.code
            )
        await _books(sessionmaker)
        async with sessionmaker() as s:
            users_cash = 0
            users_shares = 0
            for u in users:
                b = await ledger.get_balance(session=s, user_id=u)
                users_cash += b.available + b.held
                users_shares += await ledger.account_balance(
                    session=s, account=ledger.user_account(u, "shares", asset.symbol)
                )
                resting = await rwa.list_orders(
                    session=s, user_id=u, asset_id=asset.id, status="resting", limit=200
                )
                assert b.held == sum(
                    o.remaining * o.price_cents for o in resting if o.side == "buy"
                )
            escrow = await ledger.account_balance(
                session=s, account=ledger.system_account("rwa.orders", asset.symbol)
            )
            all_resting = [
                o
                for u in users
                for o in await rwa.list_orders(
                    session=s, user_id=u, asset_id=asset.id, status="resting", limit=200
                )
            ]
            outstanding = await rwa.shares_outstanding(session=s, currency=asset.symbol)
        assert users_cash == cash_total
        assert escrow == sum(o.remaining for o in all_resting if o.side == "sell")
        assert outstanding == users_shares + escrow == sum(split)
        bids = [o.price_cents for o in all_resting if o.side == "buy"]
        asks = [o.price_cents for o in all_resting if o.side == "sell"]
        if bids and asks:
            assert max(bids) < min(asks)  # the book is never left crossed

    if sale is None:
        return
    async with sessionmaker() as s, s.begin():
        fees_before = await ledger.account_balance(
            session=s, account=ledger.system_account("fee_revenue")
        )
        offer = await rwa.create_buyout(
            session=s,
            actor_id=admin,
            asset_id=asset.id,
            data=BuyoutCreate(buyer="prop", price_cents=sale),
            vote_seconds=3600,
            pass_bps=5000,
        )
    await _books(sessionmaker)
    async with sessionmaker() as s:
        before = {
            u: await ledger.account_balance(
                session=s, account=ledger.user_account(u, "shares", asset.symbol)
            )
            for u in users
        }
        cash_before = {u: (await ledger.get_balance(session=s, user_id=u)).available for u in users}
        assert sum(before.values()) == sum(split)  # the halt returned every share in open sells
    for user, approve in zip(users, yes, strict=True):
        if before[user] == 0:
            continue  # sold out before the offer: not a holder, no vote
        async with sessionmaker() as s, s.begin():
            await rwa.vote(session=s, user_id=user, buyout_id=offer.id, approve=approve)
    async with sessionmaker() as s, s.begin():
        status = await rwa.decide_buyout(session=s, buyout_id=offer.id)
    in_favour = sum(before[u] for u, approve in zip(users, yes, strict=True) if approve)
    assert status == ("passed" if 2 * in_favour >= sum(split) else "failed")
    if status == "failed":
        return
    async with sessionmaker() as s, s.begin():
        await rwa.settle_buyout(session=s, actor_id=second, buyout_id=offer.id)
    while True:
        async with sessionmaker() as s, s.begin():
            paid = await rwa.distribute(session=s, buyout_id=offer.id, limit=batch_size)
        await _books(sessionmaker)
        if paid == 0:
            break
    async with sessionmaker() as s, s.begin():
        assert await rwa.finalize_distribution(session=s, buyout_id=offer.id) == "distributed"
    await _books(sessionmaker)
    async with sessionmaker() as s:
        for u in users:
            got = (await ledger.get_balance(session=s, user_id=u)).available - cash_before[u]
            assert got == sale * before[u] // sum(split)
            left = await ledger.account_balance(
                session=s, account=ledger.user_account(u, "shares", asset.symbol)
            )
            assert left == 0
        assert await rwa.shares_outstanding(session=s, currency=asset.symbol) == 0
        fees = (
            await ledger.account_balance(session=s, account=ledger.system_account("fee_revenue"))
            - fees_before
        )
        distributed = sum(sale * before[u] // sum(split) for u in users)
        assert fees == sale - distributed < max(1, len(users))
        assert (
            await ledger.account_balance(
                session=s, account=ledger.system_account(f"rwa.sale:{offer.id}")
            )
            == 0
        )
