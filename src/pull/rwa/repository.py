"""All SQL of the RWA module."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from pull.rwa.models import (
    RwaAsset,
    RwaBuyout,
    RwaOffering,
    RwaOrder,
    RwaPosition,
    RwaSubscription,
    RwaTrade,
    RwaValuation,
    RwaVote,
)

# --- assets ---------------------------------------------------------------------------------


async def asset_by_cert(session: AsyncSession, grader: str, cert_number: str) -> RwaAsset | None:
    return (
        await session.execute(
            select(RwaAsset).where(RwaAsset.grader == grader, RwaAsset.cert_number == cert_number)
        )
    ).scalar_one_or_none()


async def get_asset(
    session: AsyncSession, asset_id: uuid.UUID, *, lock: bool = False
) -> RwaAsset | None:
    stmt = select(RwaAsset).where(RwaAsset.id == asset_id)
    if lock:  # fresh values with the lock, even if the row was read before unlocked
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def assets_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, RwaAsset]:
    if not ids:
        return {}
    rows = (await session.execute(select(RwaAsset).where(RwaAsset.id.in_(ids)))).scalars()
    return {a.id: a for a in rows}


async def assets_by_seq(session: AsyncSession, seqs: Sequence[int]) -> dict[int, RwaAsset]:
    if not seqs:
        return {}
    rows = (await session.execute(select(RwaAsset).where(RwaAsset.seq.in_(seqs)))).scalars()
    return {a.seq: a for a in rows}


async def list_assets(
    session: AsyncSession,
    *,
    category: str | None,
    states: Sequence[str] | None,
    query: str | None,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[RwaAsset]:
    stmt = select(RwaAsset)
    if category:
        stmt = stmt.where(RwaAsset.category == category)
    if states:
        stmt = stmt.where(RwaAsset.state.in_(states))
    if query:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                RwaAsset.title.ilike(pattern, escape="\\"),
                RwaAsset.description.ilike(pattern, escape="\\"),
                RwaAsset.cert_number == query,
            )
        )
    if before is not None:
        t, i = before
        stmt = stmt.where(
            or_(RwaAsset.created_at < t, and_(RwaAsset.created_at == t, RwaAsset.id < i))
        )
    stmt = stmt.order_by(RwaAsset.created_at.desc(), RwaAsset.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def set_asset_state(
    session: AsyncSession,
    asset_id: uuid.UUID,
    state: str,
    *,
    from_states: Sequence[str],
    locked_until: dt.datetime | None = None,
) -> bool:
    values: dict[str, object] = {"state": state, "updated_at": func.now()}
    if locked_until is not None:
        values["locked_until"] = locked_until
    result = await session.execute(
        update(RwaAsset)
        .where(RwaAsset.id == asset_id, RwaAsset.state.in_(from_states))
        .values(**values)
        .returning(RwaAsset.id)
    )
    return result.scalar_one_or_none() is not None


# --- valuations -----------------------------------------------------------------------------


async def valuations(session: AsyncSession, asset_id: uuid.UUID) -> list[RwaValuation]:
    stmt = (
        select(RwaValuation)
        .where(RwaValuation.asset_id == asset_id)
        .order_by(RwaValuation.as_of.desc(), RwaValuation.id.desc())
        .limit(200)
    )
    return list((await session.execute(stmt)).scalars())


async def latest_valuations(
    session: AsyncSession, asset_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not asset_ids:
        return {}
    stmt = (
        select(RwaValuation.asset_id, RwaValuation.value_cents)
        .where(RwaValuation.asset_id.in_(asset_ids))
        .ext(distinct_on(RwaValuation.asset_id))
        .order_by(RwaValuation.asset_id, RwaValuation.as_of.desc(), RwaValuation.id.desc())
    )
    return {r[0]: r[1] for r in (await session.execute(stmt)).all()}


# --- offerings ------------------------------------------------------------------------------


async def get_offering(
    session: AsyncSession, offering_id: uuid.UUID, *, lock: bool = False
) -> RwaOffering | None:
    stmt = select(RwaOffering).where(RwaOffering.id == offering_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def offerings_of(session: AsyncSession, asset_id: uuid.UUID) -> list[RwaOffering]:
    stmt = (
        select(RwaOffering)
        .where(RwaOffering.asset_id == asset_id)
        .order_by(RwaOffering.created_at.desc())
    )
    return list((await session.execute(stmt)).scalars())


async def live_offering_of(session: AsyncSession, asset_id: uuid.UUID) -> RwaOffering | None:
    stmt = (
        select(RwaOffering)
        .where(RwaOffering.asset_id == asset_id, RwaOffering.status.in_(("draft", "open")))
        .order_by(RwaOffering.created_at.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def open_offerings(session: AsyncSession, limit: int = 100) -> list[RwaOffering]:
    stmt = (
        select(RwaOffering)
        .where(RwaOffering.status == "open")
        .order_by(RwaOffering.closes_at)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def last_offering_prices(
    session: AsyncSession, asset_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The price of each asset's latest funded (else latest) offering."""
    if not asset_ids:
        return {}
    stmt = (
        select(RwaOffering.asset_id, RwaOffering.price_cents)
        .where(RwaOffering.asset_id.in_(asset_ids))
        .ext(distinct_on(RwaOffering.asset_id))
        .order_by(
            RwaOffering.asset_id,
            (RwaOffering.status == "funded").desc(),
            RwaOffering.created_at.desc(),
        )
    )
    return {r[0]: r[1] for r in (await session.execute(stmt)).all()}


async def lock_investor(session: AsyncSession, offering_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Serialize one user's subscriptions to one offering (a transaction advisory lock)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"rwa:sub:{offering_id}:{user_id}"},
    )


async def reserve_subscription(
    session: AsyncSession,
    offering_id: uuid.UUID,
    user_id: uuid.UUID,
    shares: int,
    *,
    cap: int,
    now: dt.datetime,
) -> str:
    """Count a written subscription into its offering in one statement: the shares if they
    fit, the investor if it is their first, refused above the per-investor cap. The caller
    holds the user's `lock_investor`, so the sum of their subscriptions (read in this
    statement, this one included) cannot change under it. 'counted', 'cap', or 'refused'
    (not open, or the shares do not fit)."""
    row = (
        await session.execute(
            text(
                "WITH mine AS (SELECT coalesce(sum(shares), 0) AS held FROM rwa_subscriptions "
                "  WHERE offering_id = :id AND user_id = :u AND status <> 'voided'), "
                "upd AS (UPDATE rwa_offerings o SET shares_subscribed = o.shares_subscribed + :n, "
                "  investors = o.investors + CASE WHEN mine.held = :n THEN 1 ELSE 0 END "
                "  FROM mine WHERE o.id = :id AND o.status = 'open' AND o.opens_at <= :now "
                "  AND o.closes_at > :now AND o.shares_subscribed + :n <= o.total_shares "
                "  AND mine.held <= :cap RETURNING o.id) "
                "SELECT (SELECT count(*) FROM upd), (SELECT held FROM mine)"
            ),
            {"n": shares, "id": offering_id, "u": user_id, "now": now, "cap": cap},
        )
    ).one()
    if row[0]:
        return "counted"
    return "cap" if int(row[1]) > cap else "refused"


# --- subscriptions --------------------------------------------------------------------------


async def user_subscribed(session: AsyncSession, offering_id: uuid.UUID, user_id: uuid.UUID) -> int:
    value = await session.scalar(
        select(func.coalesce(func.sum(RwaSubscription.shares), 0)).where(
            RwaSubscription.offering_id == offering_id,
            RwaSubscription.user_id == user_id,
            RwaSubscription.status != "voided",
        )
    )
    return int(value or 0)


def add(session: AsyncSession, row: object) -> None:
    session.add(row)


async def subscriptions_to_settle(
    session: AsyncSession, offering_id: uuid.UUID, limit: int
) -> list[RwaSubscription]:
    stmt = (
        select(RwaSubscription)
        .where(RwaSubscription.offering_id == offering_id, RwaSubscription.status == "held")
        .order_by(RwaSubscription.created_at, RwaSubscription.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(stmt)).scalars())


async def user_subscriptions(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[tuple[RwaSubscription, uuid.UUID]]:
    stmt = (
        select(RwaSubscription, RwaOffering.asset_id)
        .join(RwaOffering, RwaOffering.id == RwaSubscription.offering_id)
        .where(RwaSubscription.user_id == user_id)
    )
    if before is not None:
        t, i = before
        stmt = stmt.where(
            or_(
                RwaSubscription.created_at < t,
                and_(RwaSubscription.created_at == t, RwaSubscription.id < i),
            )
        )
    stmt = stmt.order_by(RwaSubscription.created_at.desc(), RwaSubscription.id.desc()).limit(limit)
    return [(r[0], r[1]) for r in (await session.execute(stmt)).all()]


# --- positions (cost basis) -----------------------------------------------------------------


async def add_cost(
    session: AsyncSession, user_id: uuid.UUID, asset_id: uuid.UUID, cents: int
) -> None:
    """Add (or with a negative amount remove) cost basis of a holder in an asset."""
    await session.execute(
        text(
            "INSERT INTO rwa_positions (user_id, asset_id, cost_basis_cents, updated_at) "
            "VALUES (:u, :a, :c, now()) ON CONFLICT (user_id, asset_id) DO UPDATE SET "
            "cost_basis_cents = GREATEST(rwa_positions.cost_basis_cents + :c, 0), "
            "updated_at = now()"
        ),
        {"u": user_id, "a": asset_id, "c": cents},
    )


async def cost_bases(session: AsyncSession, user_id: uuid.UUID) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        select(RwaPosition.asset_id, RwaPosition.cost_basis_cents).where(
            RwaPosition.user_id == user_id
        )
    )
    return {r[0]: r[1] for r in rows.all()}


async def cost_basis(session: AsyncSession, user_id: uuid.UUID, asset_id: uuid.UUID) -> int:
    value = await session.scalar(
        select(RwaPosition.cost_basis_cents).where(
            RwaPosition.user_id == user_id, RwaPosition.asset_id == asset_id
        )
    )
    return int(value or 0)


# --- secondary orders and trades ------------------------------------------------------------


_LEVELS = {
    "buy": text(
        "SELECT price_cents, sum(remaining)::bigint, count(*) FROM rwa_orders "
        "WHERE asset_id = :a AND side = 'buy' AND status = 'resting' "
        "GROUP BY price_cents ORDER BY price_cents DESC LIMIT :d"
    ),
    "sell": text(
        "SELECT price_cents, sum(remaining)::bigint, count(*) FROM rwa_orders "
        "WHERE asset_id = :a AND side = 'sell' AND status = 'resting' "
        "GROUP BY price_cents ORDER BY price_cents LIMIT :d"
    ),
}


# Resting orders crossing a limit, best first, until their shares cover the quantity; locked.
_LOCK_CROSSING = {
    "sell": text(
        "SELECT * FROM rwa_orders WHERE id IN (SELECT id FROM (SELECT id, "
        "sum(remaining) OVER (ORDER BY price_cents, seq) - remaining AS before "
        "FROM rwa_orders WHERE asset_id = :a AND side = 'sell' AND status = 'resting' "
        "AND price_cents <= :p) q WHERE before < :n) FOR UPDATE"
    ),
    "buy": text(
        "SELECT * FROM rwa_orders WHERE id IN (SELECT id FROM (SELECT id, "
        "sum(remaining) OVER (ORDER BY price_cents DESC, seq) - remaining AS before "
        "FROM rwa_orders WHERE asset_id = :a AND side = 'buy' AND status = 'resting' "
        "AND price_cents >= :p) q WHERE before < :n) FOR UPDATE"
    ),
}


async def lock_crossing(
    session: AsyncSession,
    asset_id: uuid.UUID,
    *,
    side: str,
    limit_price: int,
    quantity: int,
) -> list[RwaOrder]:
    """Resting orders of `side` that cross `limit_price`, best first (price, then time), just
    enough of them to fill `quantity`, chosen and locked in one statement; the caller holds
    the asset's lock, so the book cannot change between the choice and the lock."""
    stmt = (
        select(RwaOrder)
        .from_statement(_LOCK_CROSSING[side])
        .params(a=asset_id, p=limit_price, n=quantity)
    )
    found = list((await session.execute(stmt)).scalars())
    found.sort(key=lambda o: (o.price_cents if side == "sell" else -o.price_cents, o.seq))
    return found


async def basis_and_open_sells(
    session: AsyncSession, asset_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int]]:
    """Per user: (cost basis in the asset, shares in their resting sells), one read."""
    rows = await session.execute(
        text(
            "SELECT u, coalesce((SELECT cost_basis_cents FROM rwa_positions p "
            "  WHERE p.user_id = u AND p.asset_id = :a), 0)::bigint, "
            "coalesce((SELECT sum(remaining) FROM rwa_orders o WHERE o.user_id = u "
            "  AND o.asset_id = :a AND o.side = 'sell' AND o.status = 'resting'), 0)::bigint "
            "FROM unnest(CAST(:us AS uuid[])) AS u"
        ),
        {"a": asset_id, "us": list(user_ids)},
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


async def set_costs(
    session: AsyncSession, asset_id: uuid.UUID, costs: dict[uuid.UUID, int]
) -> None:
    """Set holders' cost bases in an asset, in one statement."""
    if not costs:
        return
    await session.execute(
        text(
            "INSERT INTO rwa_positions (user_id, asset_id, cost_basis_cents, updated_at) "
            "SELECT u, :a, c, now() FROM unnest(CAST(:us AS uuid[]), CAST(:cs AS bigint[])) "
            "AS x(u, c) ON CONFLICT (user_id, asset_id) DO UPDATE SET "
            "cost_basis_cents = EXCLUDED.cost_basis_cents, updated_at = now()"
        ),
        {"a": asset_id, "us": list(costs), "cs": list(costs.values())},
    )


async def get_order(
    session: AsyncSession, order_id: uuid.UUID, *, lock: bool = False
) -> RwaOrder | None:
    stmt = select(RwaOrder).where(RwaOrder.id == order_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def user_orders(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    asset_id: uuid.UUID | None,
    status: str | None,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[RwaOrder]:
    stmt = select(RwaOrder).where(RwaOrder.user_id == user_id)
    if asset_id is not None:
        stmt = stmt.where(RwaOrder.asset_id == asset_id)
    if status is not None:
        stmt = stmt.where(RwaOrder.status == status)
    if before is not None:
        t, i = before
        stmt = stmt.where(
            or_(RwaOrder.created_at < t, and_(RwaOrder.created_at == t, RwaOrder.id < i))
        )
    stmt = stmt.order_by(RwaOrder.created_at.desc(), RwaOrder.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def resting_orders(session: AsyncSession, asset_id: uuid.UUID) -> list[RwaOrder]:
    stmt = (
        select(RwaOrder)
        .where(RwaOrder.asset_id == asset_id, RwaOrder.status == "resting")
        .order_by(RwaOrder.seq)
        .with_for_update()
    )
    return list((await session.execute(stmt)).scalars())


async def book_levels(
    session: AsyncSession, asset_id: uuid.UUID, depth: int
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """(price, shares, orders) per level: bids best (highest) first, asks best (lowest) first."""
    out: list[list[tuple[int, int, int]]] = []
    for side in ("buy", "sell"):
        rows = await session.execute(_LEVELS[side], {"a": asset_id, "d": depth})
        out.append([(r[0], r[1], r[2]) for r in rows.all()])
    return out[0], out[1]


async def open_sell_shares(session: AsyncSession, user_id: uuid.UUID) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        text(
            "SELECT asset_id, sum(remaining)::bigint FROM rwa_orders "
            "WHERE user_id = :u AND side = 'sell' AND status = 'resting' GROUP BY asset_id"
        ),
        {"u": user_id},
    )
    return {r[0]: r[1] for r in rows.all()}


async def user_open_sells(session: AsyncSession, user_id: uuid.UUID, asset_id: uuid.UUID) -> int:
    value = await session.scalar(
        text(
            "SELECT COALESCE(sum(remaining), 0)::bigint FROM rwa_orders "
            "WHERE user_id = :u AND asset_id = :a AND side = 'sell' AND status = 'resting'"
        ),
        {"u": user_id, "a": asset_id},
    )
    return int(value or 0)


async def trades(
    session: AsyncSession, asset_id: uuid.UUID, *, before_id: int | None, limit: int
) -> list[RwaTrade]:
    stmt = select(RwaTrade).where(RwaTrade.asset_id == asset_id)
    if before_id is not None:
        stmt = stmt.where(RwaTrade.id < before_id)
    stmt = stmt.order_by(RwaTrade.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def last_trade_prices(
    session: AsyncSession, asset_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not asset_ids:
        return {}
    stmt = (
        select(RwaTrade.asset_id, RwaTrade.price_cents)
        .where(RwaTrade.asset_id.in_(asset_ids))
        .ext(distinct_on(RwaTrade.asset_id))
        .order_by(RwaTrade.asset_id, RwaTrade.id.desc())
    )
    return {r[0]: r[1] for r in (await session.execute(stmt)).all()}


async def candles(
    session: AsyncSession,
    asset_id: uuid.UUID,
    *,
    seconds: int,
    start: dt.datetime,
    end: dt.datetime,
) -> list[tuple[dt.datetime, int, int, int, int, int]]:
    """OHLC and volume per bucket of `seconds` from the trades between start and end."""
    rows = await session.execute(
        text(
            "SELECT b, (array_agg(price_cents ORDER BY id))[1], max(price_cents), "
            "min(price_cents), (array_agg(price_cents ORDER BY id DESC))[1], "
            "sum(quantity)::bigint FROM (SELECT id, price_cents, quantity, "
            "date_bin(make_interval(secs => :s), created_at, TIMESTAMPTZ '2000-01-01') AS b "
            "FROM rwa_trades WHERE asset_id = :a AND created_at >= :start "
            "AND created_at < :end) t GROUP BY b ORDER BY b"
        ),
        {"s": seconds, "a": asset_id, "start": start, "end": end},
    )
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows.all()]


# --- buyouts and votes ----------------------------------------------------------------------


async def get_buyout(
    session: AsyncSession, buyout_id: uuid.UUID, *, lock: bool = False
) -> RwaBuyout | None:
    stmt = select(RwaBuyout).where(RwaBuyout.id == buyout_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def buyouts_of(session: AsyncSession, asset_id: uuid.UUID) -> list[RwaBuyout]:
    stmt = (
        select(RwaBuyout)
        .where(RwaBuyout.asset_id == asset_id)
        .order_by(RwaBuyout.created_at.desc())
        .limit(100)
    )
    return list((await session.execute(stmt)).scalars())


async def upsert_vote(
    session: AsyncSession, buyout_id: uuid.UUID, user_id: uuid.UUID, approve: bool, shares: int
) -> None:
    await session.execute(
        text(
            "INSERT INTO rwa_votes (buyout_id, user_id, approve, shares, created_at) "
            "VALUES (:b, :u, :a, :s, now()) ON CONFLICT (buyout_id, user_id) DO UPDATE SET "
            "approve = EXCLUDED.approve, shares = EXCLUDED.shares, created_at = now()"
        ),
        {"b": buyout_id, "u": user_id, "a": approve, "s": shares},
    )


async def tally(session: AsyncSession, buyout_id: uuid.UUID) -> tuple[int, int]:
    row = (
        await session.execute(
            text(
                "SELECT COALESCE(sum(shares) FILTER (WHERE approve), 0)::bigint, "
                "COALESCE(sum(shares) FILTER (WHERE NOT approve), 0)::bigint "
                "FROM rwa_votes WHERE buyout_id = :b"
            ),
            {"b": buyout_id},
        )
    ).one()
    return int(row[0]), int(row[1])


async def vote_of(
    session: AsyncSession, buyout_id: uuid.UUID, user_id: uuid.UUID
) -> RwaVote | None:
    return (
        await session.execute(
            select(RwaVote).where(RwaVote.buyout_id == buyout_id, RwaVote.user_id == user_id)
        )
    ).scalar_one_or_none()


# --- the portfolio's reads ------------------------------------------------------------------


async def user_lot_events(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[object, ...]]:
    """The user's acquisitions and disposals of shares: issued subscriptions and secondary
    trades, as (currency, at, signed shares, cents, seq) oldest first."""
    rows = await session.execute(
        text(
            "SELECT 'RWA' || a.seq, s.resolved_at, s.shares, s.amount_cents, 0 "
            "  FROM rwa_subscriptions s JOIN rwa_offerings o ON o.id = s.offering_id "
            "  JOIN rwa_assets a ON a.id = o.asset_id "
            " WHERE s.user_id = :u AND s.status = 'issued' "
            "UNION ALL "
            "SELECT 'RWA' || a.seq, t.created_at, "
            "       CASE WHEN t.buyer_id = :u THEN t.quantity ELSE -t.quantity END, "
            "       t.price_cents * t.quantity, t.id "
            "  FROM rwa_trades t JOIN rwa_assets a ON a.id = t.asset_id "
            " WHERE (t.buyer_id = :u OR t.seller_id = :u) AND t.buyer_id <> t.seller_id "
            "ORDER BY 2, 5"
        ),
        {"u": user_id},
    )
    return [tuple(r) for r in rows.all()]


async def share_marks(
    session: AsyncSession, currencies: Sequence[str], day_start: dt.datetime
) -> list[tuple[object, ...]]:
    """Per asset (by share currency): id, title, state, last trade price, the last trade price
    before `day_start`, and the latest funded offering's price."""
    rows = await session.execute(
        text(
            "SELECT 'RWA' || a.seq, a.id, a.title, a.state, "
            "  (SELECT t.price_cents FROM rwa_trades t WHERE t.asset_id = a.id "
            "    ORDER BY t.id DESC LIMIT 1), "
            "  (SELECT t.price_cents FROM rwa_trades t WHERE t.asset_id = a.id "
            "    AND t.created_at < :day ORDER BY t.id DESC LIMIT 1), "
            "  (SELECT o.price_cents FROM rwa_offerings o WHERE o.asset_id = a.id "
            "    ORDER BY (o.status = 'funded') DESC, o.created_at DESC LIMIT 1) "
            "  FROM rwa_assets a WHERE a.seq = ANY(:s)"
        ),
        {"s": [int(c[3:]) for c in currencies if c[3:].isdigit()], "day": day_start},
    )
    return [tuple(r) for r in rows.all()]


async def open_sell_shares_of(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> list[tuple[uuid.UUID, str, int]]:
    """(user, share currency, shares) reserved by these users' resting sells."""
    rows = await session.execute(
        text(
            "SELECT o.user_id, 'RWA' || a.seq, sum(o.remaining)::bigint FROM rwa_orders o "
            "JOIN rwa_assets a ON a.id = o.asset_id "
            "WHERE o.user_id = ANY(:u) AND o.side = 'sell' AND o.status = 'resting' "
            "GROUP BY o.user_id, a.seq"
        ),
        {"u": list(user_ids)},
    )
    return [(r[0], r[1], int(r[2])) for r in rows.all()]
