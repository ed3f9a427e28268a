"""The catalog and redemptions.

`redeem` holds the points (a pending ledger transfer, soonest-expiring lots first) and then
reserves the stock with one conditional UPDATE (`stock >= quantity`), in one transaction: an
item is never oversold, and a refused reservation rolls the hold back with it. The stock row is
touched last so its lock is held as briefly as possible.

`POST /redeem` (`prepare` with `take`) goes further: the units of a limited stock are taken
by `take_stock` in a short transaction of its own (the conditional UPDATE and a hold row,
`StockHold`), so the item's row lock lives only inside PostgreSQL and a burst's winners no
longer queue on it across the API's round trips; the redemption's transaction then deletes
the hold (`settle_hold`). Committed, the units are sold; otherwise the hold is still there
and `give_back` returns it to stock: the API does at once when the transaction fails, and a
hold left by a crash is given back by the next `take_stock` that finds the item sold out once
it is older than HOLD_MAX_AGE (a redemption that deletes its hold after that finds it gone and
fails OUT_OF_STOCK: a unit is never both given back and sold). The RedemptionWorkflow (started
through the outbox on commit) fulfils it: success posts the hold, failure voids it and
restores the stock; a fulfilled redemption can be refunded (points back into their lots).

States: pending -> fulfilled | failed;  fulfilled -> refunded.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.identity import service as identity
from pull.kit.db import utcnow
from pull.kit.outbox import start_workflow_event
from pull.ledger import service as ledger
from pull.rewards import points, sold_out
from pull.rewards import repository as repo
from pull.rewards import repository_stock as stock_repo
from pull.rewards.errors import (
    InvalidRedemption,
    InvalidState,
    OutOfStock,
    RedemptionNotFound,
    RewardInactive,
    RewardNotFound,
)
from pull.rewards.models import Redemption, RewardItem
from pull.rewards.providers.base import GiftCardOrder
from pull.rewards.schemas import ItemUpdate, ItemWrite, RedeemRequest, RedemptionRead

CASH_POOL = ledger.system_account("rewards_cash")
HOLD_MAX_AGE = dt.timedelta(minutes=5)
# (item id, quantity) -> the id of a committed hold of that many units, None: not enough left
StockTaker = Callable[[uuid.UUID, int], Awaitable[uuid.UUID | None]]


def is_live(item: RewardItem, now: dt.datetime) -> bool:
    return (
        item.active
        and (item.starts_at is None or item.starts_at <= now)
        and (item.ends_at is None or now < item.ends_at)
    )


async def catalog(*, session: AsyncSession, now: dt.datetime) -> list[RewardItem]:
    return [i for i in await repo.items(session, only_active=True) if is_live(i, now)]


async def all_items(*, session: AsyncSession) -> list[RewardItem]:
    return await repo.items(session, only_active=False)


def _check_item(kind: str, product: str | None, face: int | None) -> None:
    if kind == "gift_card" and (not product or face is None):
        raise InvalidRedemption(
            "A gift card needs provider_product_id and face_value_cents", code="INVALID_ITEM"
        )


async def create_item(*, session: AsyncSession, data: ItemWrite) -> RewardItem:
    _check_item(data.kind, data.provider_product_id, data.face_value_cents)
    row = RewardItem(id=uuid.uuid4(), **data.model_dump())
    repo.add(session, row)
    await repo.flush(session)
    return row


async def update_item(*, session: AsyncSession, item_id: uuid.UUID, data: ItemUpdate) -> RewardItem:
    row = await repo.item(session, item_id)
    if row is None:
        raise RewardNotFound()
    for name, value in data.model_dump(exclude_unset=True).items():
        setattr(row, name, value)
    sold_out.raised(session, [item_id])
    row.updated_at = utcnow()
    await repo.flush(session)
    return row


async def change_stock(*, session: AsyncSession, item_id: uuid.UUID, delta: int) -> RewardItem:
    row = await repo.item(session, item_id)
    if row is None:
        raise RewardNotFound()
    if row.stock is None:
        raise InvalidState("This reward has unlimited stock", code="UNLIMITED_STOCK")
    if await repo.add_stock(session, item_id, delta) is None:
        raise InvalidState("Stock cannot go below zero", code="STOCK_NEGATIVE")
    await session.refresh(row)
    return row


def cash_cents(points_total: int, settings: Settings) -> int:
    return points_total * 100 // settings.rewards_cash_points_per_dollar


@dataclass(frozen=True, slots=True)
class Prepared:
    """A redemption written but for its stock: `reserve` is the contended last step."""

    row: Redemption
    reserve: Callable[[], Awaitable[None]]


async def prepare(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    data: RedeemRequest,
    settings: Settings,
    now: dt.datetime,
    start_workflow: bool = True,
    take: StockTaker | None = None,
) -> Prepared:
    """Check the item, hold the points, write the redemption and the event that starts its
    workflow; the stock is reserved by `reserve()`, to be called last in the transaction (the
    item's row is the hot one: its lock is then held only to the commit). A reservation that
    does not fit raises OUT_OF_STOCK and the transaction rolls back whole. With `take`, a
    limited stock is taken through it (a hold committed on its own, see the module docstring)
    and the hold is spent in this transaction."""
    item = await repo.item(session, data.reward_id)
    if item is None:
        raise RewardNotFound()
    if not is_live(item, now):
        raise RewardInactive()
    if item.kind == "physical" and data.shipping_address is None:
        raise InvalidRedemption("A physical reward needs a shipping_address")
    if item.kind != "physical" and data.shipping_address is not None:
        raise InvalidRedemption("Only a physical reward takes a shipping_address")
    early: uuid.UUID | None = None
    if item.stock is not None and item.stock < data.quantity:
        # Fail fast (no points held) when the stock is visibly gone, unless `take` finds
        # units given back from stale holds; the conditional UPDATE (of `reserve` or
        # `take_stock`) is what guarantees it is never oversold.
        if take is not None:
            early = await take(item.id, data.quantity)
        if early is None:
            raise OutOfStock(details={"reward_id": str(item.id)})
    total = item.points_price * data.quantity
    rid = uuid.uuid4()
    await points.hold(session=session, user_id=user_id, points=total, ref=str(rid), now=now)
    row = Redemption(
        id=rid,
        user_id=user_id,
        item_id=item.id,
        kind=item.kind,
        quantity=data.quantity,
        points=total,
        cash_cents=cash_cents(total, settings) if item.kind == "cash_credit" else None,
        status="pending",
        shipping_address=(
            data.shipping_address.model_dump() if data.shipping_address is not None else None
        ),
        created_at=now,
        updated_at=now,
    )
    repo.add(session, row)
    if start_workflow:
        start_workflow_event(
            session,
            workflow="RedemptionWorkflow",
            workflow_id=f"redemption-{rid}",
            arg={"redemption_id": str(rid)},
        )
    await repo.flush(session)
    item_id, quantity = item.id, data.quantity

    limited = item.stock is not None

    async def reserve() -> None:
        if take is not None and limited:
            hold = early if early is not None else await take(item_id, quantity)
            if hold is None or not await stock_repo.settle_hold(session, hold):
                raise OutOfStock(details={"reward_id": str(item_id)})
        elif not await repo.reserve_stock(session, item_id, quantity):
            raise OutOfStock(details={"reward_id": str(item_id)})

    return Prepared(row, reserve)


async def redeem(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    data: RedeemRequest,
    settings: Settings,
    now: dt.datetime,
    start_workflow: bool = True,
) -> Redemption:
    """`prepare`, then reserve the stock at once."""
    prepared = await prepare(
        session=session,
        user_id=user_id,
        data=data,
        settings=settings,
        now=now,
        start_workflow=start_workflow,
    )
    await prepared.reserve()
    return prepared.row


async def take_stock(
    *, session: AsyncSession, item_id: uuid.UUID, quantity: int, now: dt.datetime
) -> uuid.UUID | None:
    """A hold of `quantity` units of a limited stock, in this (short, own) transaction; None
    if not that many are left, after giving back the item's holds older than HOLD_MAX_AGE
    (left by a crash) and trying once more."""
    hold = uuid.uuid4()
    if await stock_repo.take_stock(session, hold, item_id, quantity):
        return hold
    stale = await stock_repo.stale_holds(session, item_id, now - HOLD_MAX_AGE)
    if stale and await stock_repo.give_back_holds(session, stale):
        if await stock_repo.take_stock(session, hold, item_id, quantity):
            return hold
    return None


async def give_back(*, session: AsyncSession, hold_ids: list[uuid.UUID]) -> None:
    """Holds whose redemption did not commit back into stock (a spent hold is gone: no-op)."""
    await stock_repo.give_back_holds(session, hold_ids)


async def get(
    *, session: AsyncSession, redemption_id: uuid.UUID, user_id: uuid.UUID | None = None
) -> Redemption:
    row = await repo.redemption(session, redemption_id)
    if row is None or (user_id is not None and row.user_id != user_id):
        raise RedemptionNotFound()
    return row


async def list_for(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[Redemption]:
    return await repo.redemptions(session, user_id, before=before, limit=limit)


async def gift_card_order(*, session: AsyncSession, redemption_id: uuid.UUID) -> GiftCardOrder:
    """What to order from the provider for a pending gift-card redemption."""
    row = await get(session=session, redemption_id=redemption_id)
    item = await repo.item(session, row.item_id)
    assert item is not None and item.provider_product_id and item.face_value_cents
    user = await identity.get_user(session=session, user_id=row.user_id)
    assert user is not None
    return GiftCardOrder(
        external_id=str(row.id),
        product_id=item.provider_product_id,
        amount_cents=item.face_value_cents * row.quantity,
        recipient_name=user.display_name or user.email.split("@")[0],
        recipient_email=user.email,
    )


async def complete(
    *,
    session: AsyncSession,
    redemption_id: uuid.UUID,
    now: dt.datetime,
    provider_ref: str | None = None,
    delivery: dict[str, Any] | None = None,
) -> Redemption:
    """Fulfilled: a cash credit is paid through the ledger, then the points hold is posted."""
    row = await repo.redemption(session, redemption_id, lock=True)
    if row is None:
        raise RedemptionNotFound()
    if row.status != "pending":
        return row
    if row.kind == "cash_credit" and row.cash_cents:
        await ledger.transfer(
            session=session,
            idempotency_key=f"rewards:cash:{row.id}",
            kind="rewards_cash_credit",
            legs=[
                ledger.Leg(CASH_POOL, -row.cash_cents),
                ledger.Leg(ledger.user_account(row.user_id, "cash"), row.cash_cents),
            ],
            reference=f"redemption:{row.id}",
        )
    await points.settle(session=session, ref=str(row.id))
    row.status = "fulfilled"
    row.provider_ref = provider_ref
    row.delivery = delivery
    row.updated_at = now
    await repo.flush(session)
    return row


async def fail(
    *, session: AsyncSession, redemption_id: uuid.UUID, reason: str, now: dt.datetime
) -> Redemption:
    """Failed: the hold is voided (points back into their lots) and the stock restored."""
    row = await repo.redemption(session, redemption_id, lock=True)
    if row is None:
        raise RedemptionNotFound()
    if row.status != "pending":
        return row
    await points.release(session=session, ref=str(row.id), now=now)
    await repo.add_stock(session, row.item_id, row.quantity)
    row.status = "failed"
    row.failure_reason = reason[:1000]
    row.updated_at = now
    await repo.flush(session)
    return row


async def refund(
    *, session: AsyncSession, redemption_id: uuid.UUID, now: dt.datetime
) -> Redemption:
    """Refund a fulfilled redemption (not a cash credit: that cash is the user's)."""
    row = await repo.redemption(session, redemption_id, lock=True)
    if row is None:
        raise RedemptionNotFound()
    if row.status == "refunded":
        return row
    if row.status != "fulfilled" or row.kind == "cash_credit":
        raise InvalidState(
            "Only a fulfilled, non-cash redemption can be refunded",
            details={"status": row.status, "kind": row.kind},
        )
    await points.refund(
        session=session, user_id=row.user_id, points=row.points, ref=str(row.id), now=now
    )
    await repo.add_stock(session, row.item_id, row.quantity)
    row.status = "refunded"
    row.updated_at = now
    await repo.flush(session)
    return row


def read(row: Redemption) -> RedemptionRead:
    return RedemptionRead(
        id=row.id,
        reward_id=row.item_id,
        kind=row.kind,
        quantity=row.quantity,
        points=row.points,
        cash_cents=row.cash_cents,
        status=row.status,
        shipping_address=row.shipping_address,
        provider_ref=row.provider_ref,
        delivery=row.delivery,
        failure_reason=row.failure_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
