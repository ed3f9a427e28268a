"""How the exchange moves money: the market's escrow and fee accounts, a placement's (or
settlement batch's) ledger transfers packed into as few transfers as the leg limit allows, and
the KYC trading limit an order gives back.

Money moves only through the ledger service: a buy's collateral moves from the user's `cash` to
`held` while it rests and from there (or from cash, for a taker) into the market's escrow
account `market_escrow:<ticker>` when it fills; fees go to `fee_revenue:<ticker>`.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange.engine import (
    Money,
)
from pull.kyc import service as kyc
from pull.ledger import service as ledger

USER_LEGS_PER_TRANSFER = 62  # plus the escrow and fee legs: the ledger's 64


def escrow_account(ticker: str) -> ledger.AccountRef:
    """The market's escrow: 100 cents per open YES/NO pair."""
    return ledger.system_account("market_escrow:" + ticker.lower())


def fee_account(ticker: str) -> ledger.AccountRef:
    """The market's fee revenue (a sub-account of fee revenue, per market so that markets
    never wait on one another's row lock)."""
    return ledger.system_account("fee_revenue:" + ticker.lower())


def limit_reference(order_id: Any, seq: int) -> str:
    return f"exchange-order:{order_id}:{seq}"


async def money_transfers(
    session: AsyncSession,
    *,
    ticker: str,
    key: str,
    kind: str,
    money: dict[Hashable, Money],
    reference: str,
) -> None:
    """Move one placement's (or settlement batch's) money in as few ledger transfers as the
    ledger's leg limit allows: users' non-zero legs are packed, each transfer balanced by its
    own escrow and fee legs."""
    chunks: list[tuple[list[ledger.Leg], int, int]] = []
    legs: list[ledger.Leg] = []
    escrow = fee = 0
    for u, m in money.items():
        assert isinstance(u, uuid.UUID)
        mine = [
            ledger.Leg(ledger.user_account(u, kind_), amount)
            for kind_, amount in (("cash", m.cash), ("held", m.held))
            if amount
        ]
        if not mine and not m.escrow and not m.fee:
            continue
        if len(legs) + len(mine) > USER_LEGS_PER_TRANSFER:
            chunks.append((legs, escrow, fee))
            legs, escrow, fee = [], 0, 0
        legs.extend(mine)
        escrow += m.escrow
        fee += m.fee
    chunks.append((legs, escrow, fee))
    for i, (user_legs, escrow, fee) in enumerate(chunks):
        all_legs = [
            *user_legs,
            ledger.Leg(escrow_account(ticker), escrow),
            ledger.Leg(fee_account(ticker), fee),
        ]
        if not any(leg.amount for leg in all_legs):
            continue
        await ledger.transfer(
            session=session,
            idempotency_key=f"{key}:{i}",
            kind=kind,
            legs=all_legs,
            reference=reference,
        )


async def release_limit(
    session: AsyncSession, *, order_id: Any, seq: int, action: str, give_back: int
) -> None:
    if action == "buy" and give_back > 0:
        await kyc.release_limit(
            session=session, reference=limit_reference(order_id, seq), amount_cents=give_back
        )
