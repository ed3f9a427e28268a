"""Subscriptions to one offering, many in one transaction (the hot drop's group commit, see
subscription_batcher): the same checks, holds and counting as `offerings.subscribe` one after
another, with a fixed number of statements per batch besides one ledger hold each.

`admit` reads the offering and the subscribers' KYC tiers once and says which requests the
batch takes: those that `prepare_subscription` would not refuse on what it reads (open,
within the per-investor cap, at the tier), one per investor, while the shares the batch has
taken still fit what the offering showed unsold. The others are left to the one-at-a-time
path, which gives each its own answer (OFFERING_SOLD_OUT, KYC_REQUIRED, ...). `subscribe_many`
holds each one's cash (a pending ledger transfer, in user order) and counts them all into the
offering in one conditional statement (`reserve_subscriptions`); if any does not fit (an
investor over the cap, the offering changed since `admit`), or a hold is refused
(INSUFFICIENT_FUNDS), it raises and the caller's transaction rolls back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pull.kit.db import utcnow
from pull.kit.errors import Conflict
from pull.kyc import service as kyc
from pull.ledger import service as ledger
from pull.rwa.assets import investor_cap
from pull.rwa.models import RwaOffering
from pull.rwa.offerings import escrow_account
from pull.rwa.repository import offerings as offering_repo
from pull.rwa.schemas import SubscriptionRead


class BatchRefused(Conflict):
    """A batch not counted as a whole (split and retried by the batcher; never an answer)."""

    code = "RWA_BATCH_REFUSED"
    message = "The batch of subscriptions did not fit; its requests are placed again"


@dataclass(frozen=True, slots=True)
class Admitted:
    offering: RwaOffering
    cap: int
    taken: list[bool]  # per request, in order


async def admit(
    *,
    session: AsyncSession,
    offering_id: uuid.UUID,
    requests: Sequence[tuple[uuid.UUID, int]],
    now: dt.datetime,
) -> Admitted | None:
    """Which of the (user, shares) requests the batch takes (see the module docstring); None
    when it takes none (the offering absent, not open, or visibly sold out)."""
    offering = await offering_repo.get_offering(session, offering_id)
    if offering is None or offering.status != "open":
        return None
    if not (offering.opens_at <= now < offering.closes_at):
        return None
    remaining = offering.total_shares - offering.shares_subscribed
    if remaining <= 0:
        return None
    tiers = await kyc.get_tiers(session=session, user_ids=list({u for u, _ in requests}))
    needed = kyc.Tier(offering.kyc_tier).rank
    cap = investor_cap(offering)
    seen: set[uuid.UUID] = set()
    taken: list[bool] = []
    for user_id, shares in requests:
        ok = (
            user_id not in seen
            and tiers[user_id].rank >= needed
            and shares <= cap
            and shares <= remaining
        )
        if ok:
            seen.add(user_id)
            remaining -= shares
        taken.append(ok)
    if not any(taken):
        return None
    return Admitted(offering, cap, taken)


async def subscribe_many(
    *,
    session: AsyncSession,
    admitted: Admitted,
    requests: Sequence[tuple[uuid.UUID, int]],
    now: dt.datetime | None = None,
) -> list[SubscriptionRead]:
    """Hold the cash of each (user, shares) request (distinct users, admitted) and count them
    all into the offering; their subscriptions, in order. 409 INSUFFICIENT_FUNDS (a hold),
    RWA_BATCH_REFUSED (not all counted): the caller rolls back."""
    now = now or utcnow()
    offering = admitted.offering
    made = [
        (uuid.uuid4(), user_id, shares, shares * offering.price_cents)
        for user_id, shares in requests
    ]
    for sid, user_id, _, amount in sorted(made, key=lambda m: m[1]):
        await ledger.transfer(
            session=session,
            idempotency_key=f"rwa:sub:{sid}",
            kind="rwa_subscription",
            legs=[
                ledger.Leg(ledger.user_account(user_id, "cash"), -amount),
                ledger.Leg(escrow_account(offering.id), amount),
            ],
            reference=f"rwa_offering:{offering.id}",
            pending=True,
        )
    if not await offering_repo.reserve_subscriptions(
        session, offering.id, made, cap=admitted.cap, now=now
    ):
        raise BatchRefused()
    return [
        SubscriptionRead(
            id=sid,
            offering_id=offering.id,
            asset_id=offering.asset_id,
            shares=shares,
            amount_cents=amount,
            status="held",
            created_at=now,
        )
        for sid, _, shares, amount in made
    ]
