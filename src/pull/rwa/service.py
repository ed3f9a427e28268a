"""The RWA module's public API (keyword-only; services never commit).

Assets (`pull.rwa.assets`), offerings and their closing steps (`pull.rwa.offerings`), and the
caller-facing reads that combine them (listings, ownership) live here.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.ledger import service as ledger
from pull.ledger.schemas import is_share_currency
from pull.rwa import repository as repo
from pull.rwa.assets import (
    add_valuation,
    asset_reads,
    create_asset,
    get_asset,
    list_assets,
    offering_read,
    shares_outstanding,
)
from pull.rwa.errors import AssetNotFound, InvalidState
from pull.rwa.offerings import (
    cancel_offering,
    close_offering,
    create_offering,
    finalize_offering,
    get_offering,
    list_subscriptions,
    open_offering,
    settle_subscriptions,
    start_trading,
    subscribe,
    workflow_id,
)
from pull.rwa.schemas import (
    Holding,
    Listing,
    Ownership,
    PurchaseRead,
)

__all__ = [
    "add_valuation",
    "cancel_offering",
    "close_offering",
    "create_asset",
    "create_offering",
    "finalize_offering",
    "get_asset",
    "get_offering",
    "list_assets",
    "list_subscriptions",
    "listings",
    "open_offering",
    "ownership",
    "purchase",
    "settle_subscriptions",
    "shares_outstanding",
    "start_trading",
    "subscribe",
    "workflow_id",
]


async def listings(*, session: AsyncSession, limit: int = 100) -> list[Listing]:
    """Open offerings (closing soonest first), then assets trading."""
    out: list[Listing] = []
    offerings = await repo.open_offerings(session, limit)
    assets = await repo.assets_by_ids(session, [o.asset_id for o in offerings])
    reads = {a.id: a for a in await asset_reads(session, list(assets.values()))}
    for o in offerings:
        out.append(Listing(kind="offering", asset=reads[o.asset_id], offering=offering_read(o)))
    trading = await repo.list_assets(
        session, category=None, states=("trading",), query=None, before=None, limit=limit
    )
    for read in await asset_reads(session, trading):
        out.append(Listing(kind="trading", asset=read))
    return out


async def ownership(*, session: AsyncSession, user_id: uuid.UUID) -> Ownership:
    """The caller's holdings: shares from the ledger, cost basis, value at the last price."""
    holdings = [
        (int(currency[3:]), balance, reserved)
        for currency, balance, reserved in await ledger.share_holdings(
            session=session, user_id=user_id
        )
        if is_share_currency(currency) and balance > 0
    ]
    assets = await repo.assets_by_seq(session, [seq for seq, _, _ in holdings])
    bases = await repo.cost_bases(session, user_id)
    reads = {a.id: a for a in await asset_reads(session, list(assets.values()))}
    items: list[Holding] = []
    for seq, balance, reserved in holdings:
        asset = assets.get(seq)
        if asset is None:
            continue
        read = reads[asset.id]
        price = read.last_price_cents
        items.append(
            Holding(
                asset_id=asset.id,
                symbol=asset.currency,
                title=asset.title,
                state=asset.state,
                shares=balance,
                shares_reserved=reserved,
                cost_basis_cents=bases.get(asset.id, 0),
                price_cents=price,
                value_cents=None if price is None else price * balance,
            )
        )
    return Ownership(
        items=items,
        value_cents=sum(h.value_cents or 0 for h in items),
        cost_basis_cents=sum(h.cost_basis_cents for h in items),
    )


async def purchase(
    *, session: AsyncSession, user_id: uuid.UUID, asset_id: uuid.UUID, shares: int
) -> PurchaseRead:
    """The seed's "buy from a listing": a subscription to the asset's open offering."""
    asset = await repo.get_asset(session, asset_id)
    if asset is None:
        raise AssetNotFound()
    offering = await repo.live_offering_of(session, asset_id)
    if asset.state != "offering" or offering is None or offering.status != "open":
        raise InvalidState("The asset has no open offering", details={"state": asset.state})
    sub = await subscribe(session=session, user_id=user_id, offering_id=offering.id, shares=shares)
    return PurchaseRead(kind="subscription", subscription=sub)
