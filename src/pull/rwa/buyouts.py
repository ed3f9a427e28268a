"""Buyouts and exits: an offer for the whole asset, the holders' vote, the sale and the pro-rata
distribution (docs/rwa.md).

    offer (admin)  -> trading halts (resting orders canceled), asset `buyout_vote`, the
                      BuyoutWorkflow starts; holders vote pro rata to their shares (they cannot
                      move while trading is halted)
    close          -> passed if yes >= outstanding x RWA_BUYOUT_PASS_BPS, else failed: the offer
                      lapses and trading resumes
    settle (a second admin: four-eyes) -> the buyer's money arrives: bank_clearing -> the sale
                      account `rwa.sale:<buyout>`; asset `sold`
    distribute     -> per holder (key rwa:buyout:<id>:dist:<user>): sale -> cash
                      floor(price x shares / outstanding), shares -> rwa.issued (retired)
    finalize       -> the rounding remainder (< 1 cent per holder) to fee_revenue; asset
                      `distributed`
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import service as identity
from pull.kit.db import utcnow
from pull.kit.outbox import emit, signal_workflow_event, start_workflow_event
from pull.ledger import service as ledger
from pull.rwa import repository as repo
from pull.rwa.assets import issued_account, shares_account, shares_outstanding
from pull.rwa.errors import AssetNotFound, FourEyesRequired, InvalidState
from pull.rwa.models import RwaBuyout
from pull.rwa.repository import assets as asset_repo
from pull.rwa.repository import buyouts as buyout_repo
from pull.rwa.repository import positions as position_repo
from pull.rwa.schemas import BuyoutCreate, BuyoutRead
from pull.rwa.trading import cancel_all

WORKFLOW = "BuyoutWorkflow"


class BuyoutNotFound(InvalidState):
    status_code = 404
    code = "BUYOUT_NOT_FOUND"
    message = "Buyout offer not found"


class NotAHolder(InvalidState):
    status_code = 403
    code = "NOT_A_HOLDER"
    message = "Only holders of the asset's shares vote"


def buyout_workflow_id(buyout_id: uuid.UUID | str) -> str:
    return f"rwa-buyout-{buyout_id}"


def sale_account(buyout_id: uuid.UUID) -> ledger.AccountRef:
    return ledger.system_account(f"rwa.sale:{buyout_id}")


def needed(b: RwaBuyout) -> int:
    """Yes votes (shares) that pass: ceil(outstanding x pass_bps / 10 000)."""
    return -(-b.shares_outstanding * b.pass_bps // 10_000)


def buyout_read(b: RwaBuyout, *, vote: bool | None = None, shares: int | None = None) -> BuyoutRead:
    return BuyoutRead(
        id=b.id,
        asset_id=b.asset_id,
        buyer=b.buyer,
        price_cents=b.price_cents,
        price_per_share_cents=b.price_cents // max(b.shares_outstanding, 1),
        shares_outstanding=b.shares_outstanding,
        pass_bps=b.pass_bps,
        shares_needed=needed(b),
        yes_shares=b.yes_shares,
        no_shares=b.no_shares,
        closes_at=b.closes_at,
        status=b.status,
        decided_at=b.decided_at,
        settled_at=b.settled_at,
        distributed_at=b.distributed_at,
        my_vote=vote,
        my_shares=shares,
    )


async def _buyout(session: AsyncSession, buyout_id: uuid.UUID, *, lock: bool = False) -> RwaBuyout:
    row = await buyout_repo.get_buyout(session, buyout_id, lock=lock)
    if row is None:
        raise BuyoutNotFound()
    return row


async def create_buyout(
    *,
    session: AsyncSession,
    actor_id: uuid.UUID,
    asset_id: uuid.UUID,
    data: BuyoutCreate,
    vote_seconds: int,
    pass_bps: int,
    now: dt.datetime | None = None,
) -> BuyoutRead:
    """Put an offer for the whole asset to the holders' vote; trading halts meanwhile."""
    now = now or utcnow()
    asset = await asset_repo.get_asset(session, asset_id, lock=True)
    if asset is None:
        raise AssetNotFound()
    if asset.state != "trading":
        raise InvalidState("Only an asset that trades can get a buyout offer")
    outstanding = await shares_outstanding(session=session, currency=asset.currency)
    await cancel_all(session=session, asset=asset, reason="buyout_vote")
    asset.state = "buyout_vote"
    asset.updated_at = now
    row = RwaBuyout(
        id=uuid.uuid4(),
        asset_id=asset_id,
        buyer=data.buyer,
        price_cents=data.price_cents,
        shares_outstanding=outstanding,
        pass_bps=pass_bps,
        closes_at=now + dt.timedelta(seconds=vote_seconds),
        status="voting",
        yes_shares=0,
        no_shares=0,
        created_by=actor_id,
        created_at=now,
    )
    repo.add(session, row)
    await session.flush()
    start_workflow_event(
        session,
        workflow=WORKFLOW,
        workflow_id=buyout_workflow_id(row.id),
        arg={"buyout_id": str(row.id), "closes_at": row.closes_at.isoformat()},
    )
    emit(  # notifications: every holder is asked to vote (docs/messaging.md)
        session,
        topic="rwa.buyout_opened",
        key=str(row.id),
        payload={
            "buyout_id": str(row.id),
            "asset_id": str(asset_id),
            "currency": asset.currency,
            "title": asset.title,
            "buyer": row.buyer,
            "price_cents": row.price_cents,
            "shares_outstanding": outstanding,
            "closes_at": row.closes_at.isoformat(),
        },
    )
    identity.record_audit(
        session,
        action="rwa.buyout.create",
        actor_id=actor_id,
        resource=f"rwa_buyout:{row.id}",
        details={"asset_id": str(asset_id), **data.model_dump(mode="json")},
    )
    return buyout_read(row)


async def get_buyout(
    *, session: AsyncSession, buyout_id: uuid.UUID, user_id: uuid.UUID | None = None
) -> BuyoutRead:
    row = await _buyout(session, buyout_id)
    vote = None if user_id is None else await buyout_repo.vote_of(session, buyout_id, user_id)
    return buyout_read(
        row,
        vote=None if vote is None else vote.approve,
        shares=None if vote is None else vote.shares,
    )


async def list_buyouts(*, session: AsyncSession, asset_id: uuid.UUID) -> list[BuyoutRead]:
    return [buyout_read(b) for b in await buyout_repo.buyouts_of(session, asset_id)]


async def vote(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    buyout_id: uuid.UUID,
    approve: bool,
    now: dt.datetime | None = None,
) -> BuyoutRead:
    """Vote yes or no with every share held (a second vote replaces the first)."""
    now = now or utcnow()
    row = await _buyout(session, buyout_id, lock=True)
    if row.status != "voting" or row.closes_at <= now:
        raise InvalidState("The vote is closed", details={"status": row.status})
    asset = await asset_repo.get_asset(session, row.asset_id)
    assert asset is not None
    held = await ledger.account_balance(
        session=session, account=shares_account(user_id, asset.currency)
    )
    if held <= 0:
        raise NotAHolder()
    await buyout_repo.upsert_vote(session, buyout_id, user_id, approve, held)
    row.yes_shares, row.no_shares = await buyout_repo.tally(session, buyout_id)
    await session.flush()
    return buyout_read(row, vote=approve, shares=held)


async def decide_buyout(
    *, session: AsyncSession, buyout_id: uuid.UUID, now: dt.datetime | None = None
) -> str:
    """At the vote's close: passed (trading stays halted until the sale settles) or failed
    (the offer lapses, trading resumes). Repeating returns the decision."""
    now = now or utcnow()
    row = await _buyout(session, buyout_id, lock=True)
    if row.status != "voting":
        return row.status
    asset = await asset_repo.get_asset(session, row.asset_id, lock=True)
    assert asset is not None
    row.yes_shares, row.no_shares = await buyout_repo.tally(session, buyout_id)
    row.decided_at = now
    if row.yes_shares >= needed(row):
        row.status = "passed"
    else:
        row.status = "failed"
        asset.state = "trading"
        asset.updated_at = now
    await session.flush()
    return row.status


async def settle_buyout(
    *, session: AsyncSession, actor_id: uuid.UUID, buyout_id: uuid.UUID
) -> BuyoutRead:
    """Record that the buyer's money arrived (four-eyes: not the admin who entered the offer):
    it is credited to the sale account and the asset is sold; the workflow distributes it."""
    row = await _buyout(session, buyout_id, lock=True)
    if row.status != "passed":
        raise InvalidState("Only a passed buyout settles", details={"status": row.status})
    if row.created_by == actor_id:
        raise FourEyesRequired("The admin who entered the offer cannot settle it")
    asset = await asset_repo.get_asset(session, row.asset_id, lock=True)
    assert asset is not None
    await ledger.transfer(
        session=session,
        idempotency_key=f"rwa:buyout:{row.id}:sale",
        kind="rwa_sale",
        legs=[
            ledger.Leg(ledger.system_account("bank_clearing"), -row.price_cents),
            ledger.Leg(sale_account(row.id), row.price_cents),
        ],
        reference=f"rwa_buyout:{row.id}",
        metadata={"buyer": row.buyer},
    )
    now = utcnow()
    row.status = "settled"
    row.settled_by = actor_id
    row.settled_at = now
    asset.state = "sold"
    asset.updated_at = now
    await session.flush()
    signal_workflow_event(session, workflow_id=buyout_workflow_id(row.id), signal="settled", arg={})
    identity.record_audit(
        session,
        action="rwa.buyout.settle",
        actor_id=actor_id,
        resource=f"rwa_buyout:{row.id}",
        details={"price_cents": row.price_cents, "created_by": str(row.created_by)},
    )
    return buyout_read(row)


async def distribute(*, session: AsyncSession, buyout_id: uuid.UUID, limit: int) -> int:
    """Pay up to `limit` holders their pro-rata proceeds and retire their shares; returns how
    many it paid (0 when every holder is paid)."""
    row = await _buyout(session, buyout_id)
    if row.status != "settled":
        raise InvalidState(details={"status": row.status})
    asset = await asset_repo.get_asset(session, row.asset_id)
    assert asset is not None
    holders = await ledger.currency_holders(session=session, currency=asset.currency, limit=limit)
    for user_id, shares in holders:
        await ledger.transfer(
            session=session,
            idempotency_key=f"rwa:buyout:{row.id}:dist:{user_id}",
            kind="rwa_distribution",
            legs=[
                ledger.Leg(
                    sale_account(row.id), -(row.price_cents * shares // row.shares_outstanding)
                ),
                ledger.Leg(
                    ledger.user_account(user_id, "cash"),
                    row.price_cents * shares // row.shares_outstanding,
                ),
                ledger.Leg(shares_account(user_id, asset.currency), -shares),
                ledger.Leg(issued_account(asset.currency), shares),
            ],
            reference=f"rwa_buyout:{row.id}",
            metadata={"shares": shares},
        )
        basis = await position_repo.cost_basis(session, user_id, asset.id)
        await position_repo.add_cost(session, user_id, asset.id, -basis)
    await session.flush()
    return len(holders)


async def finalize_distribution(*, session: AsyncSession, buyout_id: uuid.UUID) -> str:
    """Every holder paid: the rounding remainder goes to fee revenue; the asset is
    `distributed`. Returns the asset's state."""
    row = await _buyout(session, buyout_id, lock=True)
    asset = await asset_repo.get_asset(session, row.asset_id, lock=True)
    assert asset is not None
    if row.distributed_at is not None:
        return asset.state
    if await shares_outstanding(session=session, currency=asset.currency) != 0:
        raise InvalidState("Shares are still outstanding")
    left = await ledger.account_balance(session=session, account=sale_account(row.id))
    if left:
        await ledger.transfer(
            session=session,
            idempotency_key=f"rwa:buyout:{row.id}:remainder",
            kind="rwa_distribution_remainder",
            legs=[
                ledger.Leg(sale_account(row.id), -left),
                ledger.Leg(ledger.system_account("fee_revenue"), left),
            ],
            reference=f"rwa_buyout:{row.id}",
        )
    now = utcnow()
    row.distributed_at = now
    asset.state = "distributed"
    asset.updated_at = now
    await session.flush()
    return asset.state
