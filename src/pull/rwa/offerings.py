"""Primary offerings: terms, opening (four-eyes), subscriptions held on the ledger, and the
closing steps the OfferingWorkflow runs (docs/rwa.md).

Ledger keys (each step is idempotent):
    rwa:sub:<subscription>            hold: investor cash -> rwa.escrow:<offering> (pending)
    rwa:sub:<subscription>:post|void  the hold resolved at close
    rwa:sub:<subscription>:issue      shares: rwa.issued (RWA<n>) -> investor shares
    rwa:offering:<offering>:payout    escrow -> consignor cash (raise - fee) + fee_revenue (fee)
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import service as identity
from pull.kit.db import utcnow
from pull.kit.outbox import emit, signal_workflow_event, start_workflow_event
from pull.kyc import service as kyc
from pull.ledger import service as ledger
from pull.rwa import repository as repo
from pull.rwa.assets import investor_cap, issued_account, offering_read, shares_account
from pull.rwa.errors import (
    AssetNotFound,
    FourEyesRequired,
    InvalidOffering,
    InvalidState,
    InvestorCapExceeded,
    OfferingNotFound,
    OfferingNotOpen,
    OfferingSoldOut,
)
from pull.rwa.models import RwaOffering, RwaSubscription
from pull.rwa.repository import assets as asset_repo
from pull.rwa.repository import offerings as offering_repo
from pull.rwa.repository import positions as position_repo
from pull.rwa.schemas import OfferingCreate, OfferingRead, SubscriptionRead

WORKFLOW = "OfferingWorkflow"


def workflow_id(offering_id: uuid.UUID | str) -> str:
    return f"rwa-offering-{offering_id}"


def escrow_account(offering_id: uuid.UUID) -> ledger.AccountRef:
    return ledger.system_account(f"rwa.escrow:{offering_id}")


def sourcing_fee(raised: int, bps: int) -> int:
    """The sourcing fee of a raise, rounded down to the cent (in the consignor's favour)."""
    return raised * bps // 10_000


def _subscription(s: RwaSubscription, asset_id: uuid.UUID) -> SubscriptionRead:
    return SubscriptionRead(
        id=s.id,
        offering_id=s.offering_id,
        asset_id=asset_id,
        shares=s.shares,
        amount_cents=s.amount_cents,
        status=s.status,
        created_at=s.created_at,
    )


async def get_offering(*, session: AsyncSession, offering_id: uuid.UUID) -> OfferingRead:
    row = await offering_repo.get_offering(session, offering_id)
    if row is None:
        raise OfferingNotFound()
    return offering_read(row)


async def create_offering(
    *, session: AsyncSession, actor_id: uuid.UUID, asset_id: uuid.UUID, data: OfferingCreate
) -> OfferingRead:
    """A draft offering of a draft (or previously canceled) asset; another admin opens it."""
    asset = await asset_repo.get_asset(session, asset_id, lock=True)
    if asset is None:
        raise AssetNotFound()
    if asset.state not in ("draft", "canceled"):
        raise InvalidState(details={"state": asset.state})
    if await offering_repo.live_offering_of(session, asset_id) is not None:
        raise InvalidState("The asset already has a draft or open offering")
    row = RwaOffering(
        id=uuid.uuid4(),
        asset_id=asset_id,
        total_shares=data.total_shares,
        price_cents=data.price_cents,
        opens_at=data.opens_at,
        closes_at=data.closes_at,
        min_raise_cents=data.min_raise_cents,
        max_per_investor_bps=data.max_per_investor_bps,
        kyc_tier=data.kyc_tier.value,
        sourcing_fee_bps=data.sourcing_fee_bps,
        status="draft",
        shares_subscribed=0,
        investors=0,
        created_by=actor_id,
        created_at=utcnow(),
    )
    repo.add(session, row)
    await session.flush()
    identity.record_audit(
        session,
        action="rwa.offering.create",
        actor_id=actor_id,
        resource=f"rwa_offering:{row.id}",
        details={**data.model_dump(mode="json"), "asset_id": str(asset_id)},
    )
    return offering_read(row)


async def open_offering(
    *,
    session: AsyncSession,
    actor_id: uuid.UUID,
    offering_id: uuid.UUID,
    now: dt.datetime | None = None,
    closing_soon_seconds: int = 0,
) -> OfferingRead:
    """Open a draft offering (four-eyes: not by the admin who created it) and start its
    OfferingWorkflow (through the outbox, after commit). The workflow announces the opening
    at `opens_at` and, `closing_soon_seconds` before the close, that it closes soon."""
    now = now or utcnow()
    row = await offering_repo.get_offering(session, offering_id, lock=True)
    if row is None:
        raise OfferingNotFound()
    if row.status != "draft":
        raise InvalidState(details={"status": row.status})
    if row.created_by == actor_id:
        raise FourEyesRequired("The admin who created an offering cannot open it")
    if row.closes_at <= now:
        raise InvalidOffering("The offering's close time has passed")
    if not await asset_repo.set_asset_state(
        session, row.asset_id, "offering", from_states=("draft", "canceled")
    ):
        raise InvalidState("The asset is no longer a draft")
    row.status = "open"
    row.opened_by = actor_id
    await session.flush()
    start_workflow_event(
        session,
        workflow=WORKFLOW,
        workflow_id=workflow_id(row.id),
        arg={
            "offering_id": str(row.id),
            "opens_at": row.opens_at.isoformat(),
            "closes_at": row.closes_at.isoformat(),
            "closing_soon_seconds": closing_soon_seconds,
        },
    )
    identity.record_audit(
        session,
        action="rwa.offering.open",
        actor_id=actor_id,
        resource=f"rwa_offering:{row.id}",
        details={"created_by": str(row.created_by)},
    )
    return offering_read(row)


async def cancel_offering(
    *, session: AsyncSession, actor_id: uuid.UUID, offering_id: uuid.UUID, reason: str
) -> OfferingRead:
    """Cancel a draft or open offering: the workflow voids every hold."""
    row = await offering_repo.get_offering(session, offering_id, lock=True)
    if row is None:
        raise OfferingNotFound()
    if row.status not in ("draft", "open"):
        raise InvalidState(details={"status": row.status})
    was_open = row.status == "open"
    row.status = "canceled"
    row.canceled_by = actor_id
    row.close_reason = reason
    row.closed_at = utcnow()
    if not was_open:
        row.settled_at = row.closed_at
    await session.flush()
    await asset_repo.set_asset_state(session, row.asset_id, "canceled", from_states=("offering",))
    if was_open:
        signal_workflow_event(
            session, workflow_id=workflow_id(row.id), signal="cancel", arg={"reason": reason}
        )
    identity.record_audit(
        session,
        action="rwa.offering.cancel",
        actor_id=actor_id,
        resource=f"rwa_offering:{row.id}",
        details={"reason": reason},
    )
    return offering_read(row)


@dataclass(frozen=True, slots=True)
class PreparedSubscription:
    """A subscription written and its cash held; `reserve` counts it into the offering (the
    contended last step)."""

    read: SubscriptionRead
    reserve: Callable[[], Awaitable[None]]


async def prepare_subscription(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    offering_id: uuid.UUID,
    shares: int,
    now: dt.datetime | None = None,
) -> PreparedSubscription:
    """Everything of a subscription but its count in the offering: the checks and the cash
    hold (a pending ledger transfer). `reserve()` then checks the per-investor cap, counts it
    into the offering and writes the subscription row in one statement; call it last in the
    transaction, so the hot row's lock is held only from that one round trip to the commit.

    403 KYC_REQUIRED below the offering's tier; 409 OFFERING_NOT_OPEN, OFFERING_SOLD_OUT
    {remaining}, INVESTOR_CAP_EXCEEDED {cap, held}, INSUFFICIENT_FUNDS."""
    now = now or utcnow()
    offering = await offering_repo.get_offering(session, offering_id)
    if offering is None:
        raise OfferingNotFound()
    if offering.status != "open" or not (offering.opens_at <= now < offering.closes_at):
        raise OfferingNotOpen(details={"status": offering.status})
    if offering.shares_subscribed + shares > offering.total_shares:
        # Fail fast (no hold) when it is visibly sold out; the UPDATE of `reserve` decides.
        raise OfferingSoldOut(
            details={"remaining": offering.total_shares - offering.shares_subscribed}
        )
    tier = await kyc.get_tier(session=session, user_id=user_id, now=now)
    if tier.rank < kyc.Tier(offering.kyc_tier).rank:
        raise kyc.KycRequired(offering.kyc_tier)
    cap = investor_cap(offering)
    if shares > cap:
        raise InvestorCapExceeded(details={"cap": cap, "held": 0})
    amount = shares * offering.price_cents
    sub = RwaSubscription(
        id=uuid.uuid4(),
        offering_id=offering_id,
        user_id=user_id,
        shares=shares,
        amount_cents=amount,
        status="held",
        created_at=now,
    )
    await ledger.transfer(
        session=session,
        idempotency_key=f"rwa:sub:{sub.id}",
        kind="rwa_subscription",
        legs=[
            ledger.Leg(ledger.user_account(user_id, "cash"), -amount),
            ledger.Leg(escrow_account(offering_id), amount),
        ],
        reference=f"rwa_offering:{offering_id}",
        pending=True,
    )

    async def reserve() -> None:
        # The investor's row, the offering's count and the subscription row in one round
        # trip: the offering's row lock is held from it to the commit.
        outcome = await offering_repo.reserve_subscription(
            session,
            offering_id,
            user_id,
            subscription_id=sub.id,
            shares=shares,
            amount_cents=amount,
            cap=cap,
            now=now,
        )
        if outcome == "counted":
            return
        if outcome == "cap":
            held = await offering_repo.investor_shares(session, offering_id, user_id)
            raise InvestorCapExceeded(details={"cap": cap, "held": held})
        fresh = await offering_repo.get_offering(session, offering_id)
        assert fresh is not None
        await session.refresh(fresh)
        if fresh.status != "open" or fresh.closes_at <= now:
            raise OfferingNotOpen(details={"status": fresh.status})
        raise OfferingSoldOut(details={"remaining": fresh.total_shares - fresh.shares_subscribed})

    return PreparedSubscription(_subscription(sub, offering.asset_id), reserve)


async def subscribe(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    offering_id: uuid.UUID,
    shares: int,
    now: dt.datetime | None = None,
) -> SubscriptionRead:
    """Subscribe to `shares` whole shares: the cash is held on the ledger until the close
    (`prepare_subscription`, then `reserve` at once). Concurrent subscriptions never
    oversubscribe: each is counted by one conditional UPDATE of the offering row."""
    prepared = await prepare_subscription(
        session=session, user_id=user_id, offering_id=offering_id, shares=shares, now=now
    )
    await prepared.reserve()
    return prepared.read


async def list_subscriptions(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[SubscriptionRead]:
    rows = await offering_repo.user_subscriptions(session, user_id, before=before, limit=limit)
    return [_subscription(s, asset_id) for s, asset_id in rows]


# --- the OfferingWorkflow's steps (each its own transaction, idempotent) ---------------------

NoticeKind = Literal["opened", "closing_soon"]


async def announce_offering(
    *,
    session: AsyncSession,
    offering_id: uuid.UUID,
    kind: NoticeKind,
    now: dt.datetime | None = None,
) -> bool:
    """Emit `rwa.offering_opened` / `rwa.offering_closing_soon` for the notifications module
    (its consumer picks the recipients), only while the offering is open and, for "closing
    soon", not sold out. A repeat emits again; the notifications' dedupe key (per customer
    and offering) makes that no second notification."""
    now = now or utcnow()
    row = await offering_repo.get_offering(session, offering_id)
    if row is None:
        raise OfferingNotFound()
    remaining = row.total_shares - row.shares_subscribed
    if row.status != "open" or now >= row.closes_at:
        return False
    if kind == "closing_soon" and remaining <= 0:
        return False
    asset = await asset_repo.get_asset(session, row.asset_id)
    assert asset is not None
    emit(  # notifications: opted-in eligible customers (docs/messaging.md)
        session,
        topic=f"rwa.offering_{kind}",
        key=str(row.id),
        payload={
            "offering_id": str(row.id),
            "asset_id": str(asset.id),
            "title": asset.title,
            "price_cents": row.price_cents,
            "total_shares": row.total_shares,
            "shares_remaining": remaining,
            "kyc_tier": row.kyc_tier,
            "opens_at": row.opens_at.isoformat(),
            "closes_at": row.closes_at.isoformat(),
        },
    )
    await session.flush()
    return True


async def offering_investors(
    *, session: AsyncSession, offering_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of `user_ids` have subscribed to the offering (one query)."""
    return await offering_repo.investors_among(session, offering_id, list(user_ids))


CloseOutcome = Literal["funded", "failed", "canceled"]


async def close_offering(
    *, session: AsyncSession, offering_id: uuid.UUID, now: dt.datetime | None = None
) -> CloseOutcome:
    """Decide an open offering at its close: funded when the raise reaches the minimum (all or
    nothing), else failed. A canceled offering stays canceled. Repeating returns the decision."""
    now = now or utcnow()
    row = await offering_repo.get_offering(session, offering_id, lock=True)
    if row is None:
        raise OfferingNotFound()
    if row.status == "open":
        raised = row.shares_subscribed * row.price_cents
        if raised >= row.min_raise_cents:
            row.status = "funded"
            row.close_reason = None
            await asset_repo.set_asset_state(
                session, row.asset_id, "funded", from_states=("offering",)
            )
        else:
            row.status = "failed"
            row.close_reason = f"raised {raised} of the {row.min_raise_cents} minimum"
            await asset_repo.set_asset_state(
                session, row.asset_id, "canceled", from_states=("offering",)
            )
        row.closed_at = now
        await session.flush()
    if row.status not in ("funded", "failed", "canceled"):
        raise InvalidState(details={"status": row.status})
    return row.status  # type: ignore[return-value]


async def settle_subscriptions(*, session: AsyncSession, offering_id: uuid.UUID, limit: int) -> int:
    """Resolve up to `limit` held subscriptions of a closed offering: funded -> hold posted and
    shares issued; failed or canceled -> hold voided. Returns how many it resolved."""
    offering = await offering_repo.get_offering(session, offering_id)
    if offering is None:
        raise OfferingNotFound()
    if offering.status not in ("funded", "failed", "canceled"):
        raise InvalidState(details={"status": offering.status})
    asset = await asset_repo.get_asset(session, offering.asset_id)
    assert asset is not None
    rows = await offering_repo.subscriptions_to_settle(session, offering_id, limit)
    now = utcnow()
    for sub in rows:
        key = f"rwa:sub:{sub.id}"
        if offering.status == "funded":
            await ledger.post_pending(session=session, idempotency_key=key)
            await ledger.transfer(
                session=session,
                idempotency_key=f"{key}:issue",
                kind="rwa_issue",
                legs=[
                    ledger.Leg(issued_account(asset.currency), -sub.shares),
                    ledger.Leg(shares_account(sub.user_id, asset.currency), sub.shares),
                ],
                reference=f"rwa_offering:{offering_id}",
            )
            await position_repo.add_cost(session, sub.user_id, asset.id, sub.amount_cents)
            sub.status = "issued"
        else:
            await ledger.void_pending(session=session, idempotency_key=key)
            sub.status = "voided"
        sub.resolved_at = now
        emit(  # notifications: the subscriber's own result (docs/messaging.md)
            session,
            topic="rwa.subscription_settled",
            key=str(sub.user_id),
            payload={
                "user_id": str(sub.user_id),
                "subscription_id": str(sub.id),
                "offering_id": str(offering_id),
                "asset_id": str(asset.id),
                "title": asset.title,
                "outcome": offering.status,
                "shares": sub.shares,
                "amount": sub.amount_cents,
            },
        )
    await session.flush()
    return len(rows)


async def finalize_offering(
    *,
    session: AsyncSession,
    offering_id: uuid.UUID,
    lockup_seconds: int,
    now: dt.datetime | None = None,
) -> str:
    """After every subscription is resolved: a funded offering pays the consignor the raise
    less the sourcing fee (the fee to revenue) and locks the asset until the lock-up ends.
    Returns the asset's state."""
    now = now or utcnow()
    offering = await offering_repo.get_offering(session, offering_id, lock=True)
    if offering is None:
        raise OfferingNotFound()
    asset = await asset_repo.get_asset(session, offering.asset_id, lock=True)
    assert asset is not None
    if offering.settled_at is not None:
        return asset.state
    if offering.status == "funded":
        raised = offering.shares_subscribed * offering.price_cents
        fee = sourcing_fee(raised, offering.sourcing_fee_bps)
        await ledger.transfer(
            session=session,
            idempotency_key=f"rwa:offering:{offering_id}:payout",
            kind="rwa_payout",
            legs=[
                ledger.Leg(escrow_account(offering_id), -raised),
                ledger.Leg(ledger.user_account(asset.consignor_id, "cash"), raised - fee),
                ledger.Leg(ledger.system_account("fee_revenue"), fee),
            ],
            reference=f"rwa_offering:{offering_id}",
            metadata={"raised": raised, "sourcing_fee": fee},
        )
        await asset_repo.set_asset_state(
            session,
            asset.id,
            "locked",
            from_states=("funded",),
            locked_until=now + dt.timedelta(seconds=lockup_seconds),
        )
    offering.settled_at = now
    await session.flush()
    await session.refresh(asset)
    return asset.state


async def start_trading(
    *, session: AsyncSession, asset_id: uuid.UUID, now: dt.datetime | None = None
) -> str:
    """End a lock-up: a locked asset whose lock-up has passed starts trading."""
    now = now or utcnow()
    asset = await asset_repo.get_asset(session, asset_id, lock=True)
    if asset is None:
        raise AssetNotFound()
    if asset.state == "locked" and (asset.locked_until is None or asset.locked_until <= now):
        asset.state = "trading"
        asset.updated_at = now
        await session.flush()
    return asset.state


async def offering_asset(*, session: AsyncSession, offering_id: uuid.UUID) -> uuid.UUID:
    row = await offering_repo.get_offering(session, offering_id)
    if row is None:
        raise OfferingNotFound()
    return row.asset_id
