"""Settlement of a resolved market: positions paid from the market's escrow in batches (the
Temporal `SettlementWorkflow` drives them), then the market marked settled.

A batch is a constant number of set-based statements whatever its size: the positions read
and locked (one statement), the void cost prefix (void only), one ledger transfer for the whole
batch (`ledger.bulk.transfer_bulk`: escrow debit, a cash credit per winner), the settlement
records and zeroed positions (one statement) and the outbox event.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import read_cache
from pull.exchange import repository as repo
from pull.exchange.errors import (
    InvalidTransition,
    MarketNotFound,
)
from pull.exchange.markets import market_reads
from pull.exchange.money import escrow_account
from pull.exchange.schemas import (
    MarketRead,
    SettleBatch,
)
from pull.kit.db import utcnow
from pull.kit.outbox import emit
from pull.ledger import service as ledger
from pull.ledger.bulk import transfer_bulk


async def settle_batch(
    *,
    session: AsyncSession,
    ticker: str,
    batch_size: int = 1000,
    after: uuid.UUID | None = None,
    user_range: tuple[uuid.UUID, uuid.UUID] | None = None,
) -> SettleBatch:
    """Pay the next `batch_size` unsettled positions of a resolved market from its escrow and
    write their settlement records, in the caller's transaction. Idempotent: settled positions
    are skipped, and a crash before commit leaves nothing behind."""
    market = await repo.market_by_ticker(session, ticker)
    if market is None:
        raise MarketNotFound()
    if market.result is None:
        raise InvalidTransition("The market has no result yet")
    if market.status == "settled":
        return SettleBatch(settled=0, paid=0, done=True)
    rows = await repo.unsettled_positions(session, market.id, batch_size, after, user_range)
    if not rows:
        return SettleBatch(settled=0, paid=0, done=True)
    records: list[dict[str, Any]] = []
    legs: list[ledger.Leg] = []
    paid = pot = before = total_cost = 0
    if market.result == "void":
        # Zero-sum against the market's own escrow (100¢ per open pair): each position gets
        # its pro-rata share by cost basis, rounded by cumulative floors in user id order so
        # that the shares add up to the escrow exactly, whatever the batches and lanes.
        pot = 100 * int(market.open_interest)
        before, total_cost = await repo.void_cost_prefix(session, market.id, rows[0][0])
    for row in rows:
        user_id, position, cost_basis = row[0], row[1], row[2]
        yes = max(0, int(position))
        no = max(0, -int(position))
        if market.result == "yes":
            revenue = 100 * yes
        elif market.result == "no":
            revenue = 100 * no
        else:
            upto = before + int(cost_basis)
            revenue = _void_share(pot, before, upto, total_cost)
            before = upto
        paid += revenue
        records.append(
            {
                "user_id": str(user_id),
                "yes_count": yes,
                "no_count": no,
                "cost_basis": int(cost_basis),
                "revenue": revenue,
            }
        )
        if revenue:
            legs.append(ledger.Leg(ledger.user_account(user_id, "cash"), revenue))
    first, last = rows[0][0], rows[-1][0]
    if paid:
        # the whole batch is one transfer from the escrow, written set-based (ledger.bulk)
        legs.append(ledger.Leg(escrow_account(ticker), -paid))
        await transfer_bulk(
            session=session,
            idempotency_key=f"exchange:settle:{ticker}:{first}:{last}",
            kind="exchange.settlement",
            legs=legs,
            reference=f"settlement:{ticker}",
        )
    await repo.write_settlements(
        session, market_id=market.id, ticker=ticker, result=market.result, rows=records
    )
    emit(
        session,
        topic="exchange.settlement",
        key=ticker,
        payload={
            "ticker": ticker,
            "result": market.result,
            "settlements": [{"user_id": r["user_id"], "revenue": r["revenue"]} for r in records],
        },
    )
    return SettleBatch(
        settled=len(rows), paid=paid, done=len(rows) < batch_size, last_user_id=rows[-1][0]
    )


def _void_share(pot: int, before: int, upto: int, total_cost: int) -> int:
    """A voided position's share of `pot`: the cumulative floor of `pot * cost / total cost` up
    to and including it, minus the same up to the previous position. The shares of all
    positions telescope to exactly `pot`."""
    if total_cost <= 0:
        return 0
    return pot * upto // total_cost - pot * before // total_cost


async def finalize_settlement(*, session: AsyncSession, ticker: str) -> MarketRead:
    """Mark a fully paid market settled. Settlement pays out exactly the market's escrow (YES
    or NO: 100¢ per winning contract; void: the escrow shared pro rata), so the escrow is zero
    here; anything else is a broken invariant and is refused, never booked to a house
    account."""
    market = await repo.market_by_ticker(session, ticker, lock=True)
    if market is None:
        raise MarketNotFound()
    read_cache.touch(session, ticker)
    if market.status != "settled":
        if await repo.unsettled_positions(session, market.id, 1):
            raise InvalidTransition("Positions remain unsettled")
        residual = await ledger.account_balance(session=session, account=escrow_account(ticker))
        if residual:
            raise InvalidTransition(
                "The market escrow does not balance after settlement",
                details={"escrow": residual},
            )
        market.status = "settled"
        market.settled_at = utcnow()
        market.open_interest = 0
        await session.flush()
        emit(
            session,
            topic="exchange.market",
            key=ticker,
            payload={"ticker": ticker, "status": "settled", "result": market.result},
        )
    return (await market_reads(session, [market]))[0]
