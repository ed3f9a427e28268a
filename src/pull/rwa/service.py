"""The RWA module's public API (keyword-only; services never commit).

Assets (`pull.rwa.assets`), offerings and their closing steps (`pull.rwa.offerings`), and the
caller-facing reads that combine them (listings, ownership) live here.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.kit.errors import Unprocessable
from pull.ledger import service as ledger
from pull.ledger.schemas import is_share_currency
from pull.rwa.assets import (
    add_valuation,
    asset_reads,
    create_asset,
    get_asset,
    list_assets,
    offering_read,
    shares_outstanding,
)
from pull.rwa.buyouts import (
    buyout_workflow_id,
    create_buyout,
    decide_buyout,
    distribute,
    finalize_distribution,
    get_buyout,
    list_buyouts,
    settle_buyout,
    vote,
)
from pull.rwa.errors import AssetNotFound, InvalidState
from pull.rwa.holdings import (
    ShareEvent,
    ShareMark,
    lots_version,
    reserved_by_sells,
    share_events,
    share_marks,
)
from pull.rwa.offerings import (
    PreparedSubscription,
    announce_offering,
    cancel_offering,
    close_offering,
    create_offering,
    finalize_offering,
    get_offering,
    list_subscriptions,
    offering_investors,
    open_offering,
    prepare_subscription,
    settle_subscriptions,
    start_trading,
    subscribe,
    workflow_id,
)
from pull.rwa.placement import OrderSpec, check_trader, place_order, place_orders
from pull.rwa.repository import assets as asset_repo
from pull.rwa.repository import offerings as offering_repo
from pull.rwa.repository import orders as order_repo
from pull.rwa.repository import positions as position_repo
from pull.rwa.schemas import (
    BookLevel,
    Candle,
    CandlesRead,
    Holding,
    Listing,
    OrderbookRead,
    Ownership,
    PurchaseRead,
    TradeRead,
)
from pull.rwa.trading import (
    cancel_all,
    cancel_order,
    decrease_order,
    get_order,
    list_orders,
    market_open,
    order_read,
)

__all__ = [
    "INTERVALS",
    "OrderSpec",
    "PreparedSubscription",
    "ShareEvent",
    "ShareMark",
    "add_valuation",
    "announce_offering",
    "buyout_workflow_id",
    "cancel_all",
    "cancel_offering",
    "cancel_order",
    "candles",
    "check_trader",
    "close_offering",
    "create_asset",
    "create_buyout",
    "create_offering",
    "decide_buyout",
    "decrease_order",
    "distribute",
    "finalize_distribution",
    "finalize_offering",
    "get_asset",
    "get_buyout",
    "get_offering",
    "get_order",
    "list_assets",
    "list_buyouts",
    "list_orders",
    "list_subscriptions",
    "listings",
    "lots_version",
    "market_open",
    "offering_investors",
    "open_offering",
    "order_read",
    "orderbook",
    "ownership",
    "place_order",
    "place_orders",
    "prepare_subscription",
    "purchase",
    "reserved_by_sells",
    "settle_buyout",
    "settle_subscriptions",
    "share_events",
    "share_marks",
    "shares_outstanding",
    "start_trading",
    "subscribe",
    "trades",
    "vote",
    "workflow_id",
]


async def listings(*, session: AsyncSession, limit: int = 100) -> list[Listing]:
    """Open offerings (closing soonest first), then assets trading."""
    out: list[Listing] = []
    offerings = await offering_repo.open_offerings(session, limit)
    assets = await asset_repo.assets_by_ids(session, [o.asset_id for o in offerings])
    reads = {a.id: a for a in await asset_reads(session, list(assets.values()))}
    for o in offerings:
        out.append(Listing(kind="offering", asset=reads[o.asset_id], offering=offering_read(o)))
    trading = await asset_repo.list_assets(
        session, category=None, states=("trading",), query=None, before=None, limit=limit
    )
    for read in await asset_reads(session, trading):
        out.append(Listing(kind="trading", asset=read))
    return out


async def ownership(*, session: AsyncSession, user_id: uuid.UUID) -> Ownership:
    """The caller's holdings: shares from the ledger, cost basis, value at the last price."""
    free = {
        int(currency[3:]): balance
        for currency, balance, _ in await ledger.share_holdings(session=session, user_id=user_id)
        if is_share_currency(currency)
    }
    selling = await order_repo.open_sell_shares(session, user_id)
    by_id = await asset_repo.assets_by_ids(session, list(selling))
    assets = await asset_repo.assets_by_seq(
        session, sorted(set(free) | {a.seq for a in by_id.values()})
    )
    bases = await position_repo.cost_bases(session, user_id)
    reads = {a.id: a for a in await asset_reads(session, list(assets.values()))}
    items: list[Holding] = []
    for seq, asset in sorted(assets.items()):
        reserved = selling.get(asset.id, 0)
        balance = free.get(seq, 0) + reserved
        if balance <= 0:
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
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    asset_id: uuid.UUID,
    shares: int,
    max_price_cents: int | None = None,
    trading_hours: str = "",
) -> PurchaseRead:
    """The seed's "buy from a listing": a subscription to the asset's open offering, or for an
    asset trading, an immediate-or-cancel buy up to `max_price_cents` a share."""
    asset = await asset_repo.get_asset(session, asset_id)
    if asset is None:
        raise AssetNotFound()
    if asset.state == "trading":
        if max_price_cents is None:
            raise Unprocessable(
                "max_price_cents is required to buy an asset that trades", code="PRICE_REQUIRED"
            )
        order = await place_order(
            session=session,
            user_id=user_id,
            asset_id=asset_id,
            side="buy",
            price_cents=max_price_cents,
            quantity=shares,
            time_in_force="ioc",
            trading_hours=trading_hours,
        )
        return PurchaseRead(kind="order", order=order)
    offering = await offering_repo.live_offering_of(session, asset_id)
    if asset.state != "offering" or offering is None or offering.status != "open":
        raise InvalidState("The asset has no open offering", details={"state": asset.state})
    sub = await subscribe(session=session, user_id=user_id, offering_id=offering.id, shares=shares)
    return PurchaseRead(kind="subscription", subscription=sub)


async def orderbook(
    *, session: AsyncSession, asset_id: uuid.UUID, depth: int = 20
) -> OrderbookRead:
    if await asset_repo.get_asset(session, asset_id) is None:
        raise AssetNotFound()
    bids, asks = await order_repo.book_levels(session, asset_id, depth)
    return OrderbookRead(
        asset_id=asset_id,
        bids=[BookLevel(price_cents=p, shares=n, orders=c) for p, n, c in bids],
        asks=[BookLevel(price_cents=p, shares=n, orders=c) for p, n, c in asks],
    )


async def trades(
    *, session: AsyncSession, asset_id: uuid.UUID, before_id: int | None = None, limit: int = 50
) -> list[TradeRead]:
    if await asset_repo.get_asset(session, asset_id) is None:
        raise AssetNotFound()
    rows = await order_repo.trades(session, asset_id, before_id=before_id, limit=limit)
    return [
        TradeRead(
            id=t.id,
            price_cents=t.price_cents,
            quantity=t.quantity,
            taker_side=t.taker_side,
            created_at=t.created_at,
        )
        for t in rows
    ]


INTERVALS = {"1m": 60, "1h": 3600, "1d": 86_400}


async def candles(
    *,
    session: AsyncSession,
    asset_id: uuid.UUID,
    interval: str,
    start: dt.datetime,
    end: dt.datetime,
) -> CandlesRead:
    if await asset_repo.get_asset(session, asset_id) is None:
        raise AssetNotFound()
    rows = await order_repo.candles(
        session, asset_id, seconds=INTERVALS[interval], start=start, end=end
    )
    return CandlesRead(
        asset_id=asset_id,
        interval=interval,
        items=[
            Candle(start=b, open=o, high=h, low=low, close=c, volume=v)
            for b, o, h, low, c, v in rows
        ],
    )
