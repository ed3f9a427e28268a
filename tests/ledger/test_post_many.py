"""`post_pending_many` posts holds exactly as `post_pending` does one by one (same keys,
content hashes and entries: a replay through either is recognized), in two statements."""

from __future__ import annotations

import uuid

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.ledger.service import (
    Leg,
    get_balance,
    get_transfer,
    post_pending,
    post_pending_many,
    system_account,
    transfer,
    trial_balance,
    user_account,
)
from tests.ledger.conftest import NewUser

OMNIBUS = system_account("test_post_many")
CLEARING = system_account("bank_clearing")


async def test_many_holds_posted_in_two_statements_as_one_by_one(
    sessionmaker: async_sessionmaker[AsyncSession], new_user: NewUser
) -> None:
    users = [await new_user() for _ in range(3)]
    tag = uuid.uuid4().hex
    async with sessionmaker() as s, s.begin():
        for i, u in enumerate(users):
            await transfer(
                session=s,
                idempotency_key=f"{tag}:fund:{i}",
                kind="deposit_settled",
                legs=[Leg(CLEARING, -1_000), Leg(user_account(u, "cash"), 1_000)],
            )
            await transfer(
                session=s,
                idempotency_key=f"{tag}:hold:{i}",
                kind="test.hold",
                legs=[Leg(user_account(u, "cash"), -600), Leg(OMNIBUS, 600)],
                reference=f"ref:{i}",
                pending=True,
            )
        # one posted the usual way first: the batch replays it, not posting twice
        single = await post_pending(session=s, idempotency_key=f"{tag}:hold:0", amount=600)

    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    async with sessionmaker() as s, s.begin():
        conn = await s.connection()
        event.listen(conn.sync_connection, "before_cursor_execute", count)
        await post_pending_many(
            session=s,
            posts=[(f"{tag}:hold:1", 450), (f"{tag}:hold:2", 0), (f"{tag}:hold:1", 450)],
        )
        event.remove(conn.sync_connection, "before_cursor_execute", count)
        # the two fresh holds in two statements; the given-twice and posted-before ones through
        # post_pending (its replay check)
        assert statements <= 2 + 2 * 3, statements
        await post_pending_many(session=s, posts=[(f"{tag}:hold:0", 600)])

    async with sessionmaker() as s:
        balances = [await get_balance(session=s, user_id=u) for u in users]
        assert [(b.available, b.held) for b in balances] == [(400, 0), (550, 0), (1_000, 0)]
        # what post_pending finds for the batch's postings: the same transfers, as replays
        again = await post_pending(session=s, idempotency_key=f"{tag}:hold:1", amount=450)
        assert again.replayed and again.pending_id is not None
        posted = await get_transfer(session=s, idempotency_key=f"{tag}:hold:1:post")
        assert posted is not None and posted.id == again.id and posted.amount_for(OMNIBUS) == 450
        assert posted.reference == "ref:1"
        zero = await get_transfer(session=s, idempotency_key=f"{tag}:hold:2:post")
        assert zero is not None and zero.legs == ()  # posted 0: all released
        first = await get_transfer(session=s, idempotency_key=f"{tag}:hold:0:post")
        assert first is not None and first.id == single.id
        assert (await trial_balance(session=s)).balanced
