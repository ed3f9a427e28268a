"""Group commit of order placement, through a real `pull api` process: orders for one market
sent at once share transactions (the market's published book moves once per transaction
that changed it, so fewer times than there are resting orders), a refused order is answered
its own error without failing its batch-mates, and every acknowledged order is in the
database with the invariants intact."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.exchange.conftest import check_invariants

Maker = async_sessionmaker[AsyncSession]


async def test_orders_for_one_market_commit_together_and_refusals_stay_alone(
    api_server: str, trader: Any, market_factory: Any, sessionmaker: Maker
) -> None:
    ticker = await market_factory()
    users = [await trader(cents=50_000) for _ in range(12)]
    poor = await trader(cents=0)

    def buy(i: int) -> dict[str, Any]:
        # good-till-canceled below every ask: each rests and changes the book
        return {
            "ticker": ticker,
            "side": "yes",
            "action": "buy",
            "count": 1,
            "yes_price": 5 + i % 10,
        }

    sell = {"ticker": ticker, "side": "yes", "action": "sell", "count": 3, "yes_price": 50}
    seq_sql = text(
        "SELECT s.seq FROM exchange_book_state s JOIN exchange_markets m ON m.id = s.market_id "
        "WHERE m.ticker = :t"
    )
    async with sessionmaker() as s:
        seq0 = (await s.execute(seq_sql, {"t": ticker})).scalar_one_or_none() or 0
    async with httpx.AsyncClient(base_url=api_server, timeout=60) as c:
        for _round in range(3):
            sends = []
            for i in range(48):
                if i % 8 == 3:  # refused inside the book command: no position to sell
                    sends.append(c.post("/api/v1/orders", json=sell, headers=poor.headers))
                else:
                    u = users[i % len(users)]
                    sends.append(c.post("/api/v1/orders", json=buy(i), headers=u.headers))
            answers = await asyncio.gather(*sends)
            codes = [r.status_code for r in answers]
            for i, r in enumerate(answers):
                if i % 8 == 3:
                    assert r.status_code == 409, r.text
                    assert r.json()["error"]["code"] == "INSUFFICIENT_POSITION", r.text
                else:
                    assert r.status_code == 201, (codes, r.text[:300])
    async with sessionmaker() as s:
        orders = (
            await s.execute(
                text(
                    "SELECT count(*) FROM exchange_orders WHERE ticker = :t AND status = 'resting'"
                ),
                {"t": ticker},
            )
        ).scalar_one()
        assert orders == 3 * 42  # every acknowledged order rests, and no refused one exists
        moves = (await s.execute(seq_sql, {"t": ticker})).scalar_one() - seq0
        assert 0 < moves < orders  # one per transaction: some orders shared one
        await check_invariants(s, [ticker])


async def test_an_order_refused_after_it_wrote_leaves_its_batch_mates_and_nothing_behind(
    api_server: str, trader: Any, market_factory: Any, sessionmaker: Maker
) -> None:
    """A batch runs without savepoints until an order is refused after it wrote something
    (here its trading limit use, then the ledger refuses the collateral): that batch is
    rolled back and run again with a savepoint per order, so the refused order's caller gets
    its own error, nothing of it stays, and its batch-mates commit."""
    ticker = await market_factory()
    users = [await trader(cents=50_000) for _ in range(8)]
    broke = await trader(cents=0)
    buy = {"ticker": ticker, "side": "yes", "action": "buy", "count": 1}
    async with httpx.AsyncClient(base_url=api_server, timeout=60) as c:
        for _round in range(3):
            sends = []
            for i in range(40):
                user = broke if i % 5 == 2 else users[i % len(users)]
                body = {**buy, "yes_price": 5 + i % 20}
                sends.append(c.post("/api/v1/orders", json=body, headers=user.headers))
            answers = await asyncio.gather(*sends)
            for i, r in enumerate(answers):
                if i % 5 == 2:
                    assert r.status_code == 409, r.text
                    assert r.json()["error"]["code"] == "INSUFFICIENT_FUNDS", r.text
                else:
                    assert r.status_code == 201, r.text[:300]
    async with sessionmaker() as s:
        resting = (
            await s.execute(
                text(
                    "SELECT count(*) FROM exchange_orders WHERE ticker = :t AND status = 'resting'"
                ),
                {"t": ticker},
            )
        ).scalar_one()
        assert resting == 3 * 32
        used = (
            await s.execute(
                text("SELECT count(*) FROM kyc_limit_usage WHERE user_id = :u"),
                {"u": broke.id},
            )
        ).scalar_one()
        assert used == 0  # the refused orders' limit uses were undone with them
        await check_invariants(s, [ticker])


async def test_a_batch_locks_its_market_once_and_takes_no_savepoints(
    app: Any, trader: Any, market_factory: Any, sessionmaker: Maker
) -> None:
    """Orders for one market sent at once into one process: the market row is locked (and
    its sequence numbers taken) once per batch, not once per order, and orders without an
    idempotency key run without a savepoint each (counted on the app's engine)."""
    from sqlalchemy import event

    ticker = await market_factory()
    users = [await trader(cents=50_000) for _ in range(8)]
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = app.state.engine
    transport = httpx.ASGITransport(app=app)
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            answers = await asyncio.gather(
                *(
                    c.post(
                        "/api/v1/orders",
                        json={
                            "ticker": ticker,
                            "side": "yes",
                            "action": "buy",
                            "count": 1,
                            "yes_price": 5 + i % 20,
                        },
                        headers=users[i % len(users)].headers,
                    )
                    for i in range(32)
                )
            )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert [r.status_code for r in answers] == [201] * 32
    locks = [s for s in seen if s.startswith("UPDATE exchange_markets SET order_seq")]
    savepoints = [s for s in seen if s.upper().startswith("SAVEPOINT")]
    assert 0 < len(locks) < 32
    assert savepoints == []
    async with sessionmaker() as s:
        await check_invariants(s, [ticker])
