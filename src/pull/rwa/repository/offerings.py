"""SQL of offerings and subscriptions: the hot-drop counter and the per-investor cap."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import and_, or_, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from pull.rwa.models import (
    RwaOffering,
    RwaSubscription,
)

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


# One subscription counted into its offering, in one round trip (the contended step):
#   inv  adds the shares to the investor's row, unless that passes the per-investor cap (the
#        row's lock serializes one investor's subscriptions to one offering; taken before the
#        offering row's, everywhere);
#   upd  counts them into the offering if it is open and they fit (the CHECK
#        shares_subscribed <= total_shares backs it), and the investor if it is new;
#   sub  writes the subscription row.
# Nothing counted leaves inv's change to the caller's rollback (a refusal raises).
_RESERVE = text(
    "WITH inv AS (INSERT INTO rwa_offering_investors AS i (offering_id, user_id, shares) "
    "  VALUES (:id, :u, :n) ON CONFLICT (offering_id, user_id) DO UPDATE "
    "  SET shares = i.shares + EXCLUDED.shares WHERE i.shares + EXCLUDED.shares <= :cap "
    "  RETURNING (i.xmax = 0) AS first), "
    "upd AS (UPDATE rwa_offerings o SET shares_subscribed = o.shares_subscribed + :n, "
    "  investors = o.investors + (SELECT CASE WHEN first THEN 1 ELSE 0 END FROM inv) "
    "  WHERE o.id = :id AND EXISTS (SELECT 1 FROM inv) AND o.status = 'open' "
    "  AND o.opens_at <= :now AND o.closes_at > :now "
    "  AND o.shares_subscribed + :n <= o.total_shares RETURNING o.id), "
    "sub AS (INSERT INTO rwa_subscriptions "
    "  (id, offering_id, user_id, shares, amount_cents, status, created_at) "
    "  SELECT :sid, :id, :u, :n, :amount, 'held', :now FROM upd RETURNING id) "
    "SELECT (SELECT count(*) FROM sub), (SELECT count(*) FROM inv)"
)


async def reserve_subscription(
    session: AsyncSession,
    offering_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    subscription_id: uuid.UUID,
    shares: int,
    amount_cents: int,
    cap: int,
    now: dt.datetime,
) -> str:
    """Count a subscription into its offering and write it, in one statement (`_RESERVE`):
    'counted'; 'cap' (the investor's shares would pass `cap`); or 'refused' (not open, or
    the shares do not fit). A refusal may have changed the investor's row: the caller raises,
    and its transaction rolls back."""
    row = (
        await session.execute(
            _RESERVE,
            {
                "id": offering_id,
                "u": user_id,
                "n": shares,
                "sid": subscription_id,
                "amount": amount_cents,
                "cap": cap,
                "now": now,
            },
        )
    ).one()
    if row[0]:
        return "counted"
    return "refused" if row[1] else "cap"


# Many subscriptions of a batch (subscription_batcher) counted in one round trip, as one
# `_RESERVE` each would, or none of them: the investors' rows in user order (each within the
# cap), the offering's count if every investor's row took the shares and the total fits, the
# subscription rows. Fewer rows written than given: the caller raises and rolls back.
_RESERVE_MANY = text(
    "WITH x AS (SELECT * FROM unnest(CAST(:users AS uuid[]), CAST(:shares AS bigint[]), "
    "  CAST(:sids AS uuid[]), CAST(:amounts AS bigint[])) AS x(u, n, sid, amount)), "
    "inv AS (INSERT INTO rwa_offering_investors AS i (offering_id, user_id, shares) "
    "  SELECT :id, u, n FROM x ORDER BY u ON CONFLICT (offering_id, user_id) DO UPDATE "
    "  SET shares = i.shares + EXCLUDED.shares WHERE i.shares + EXCLUDED.shares <= :cap "
    "  RETURNING (i.xmax = 0) AS first), "
    "upd AS (UPDATE rwa_offerings o SET shares_subscribed = o.shares_subscribed + :total, "
    "  investors = o.investors + (SELECT count(*) FILTER (WHERE first) FROM inv) "
    "  WHERE o.id = :id AND (SELECT count(*) FROM inv) = :count AND o.status = 'open' "
    "  AND o.opens_at <= :now AND o.closes_at > :now "
    "  AND o.shares_subscribed + :total <= o.total_shares RETURNING o.id), "
    "sub AS (INSERT INTO rwa_subscriptions "
    "  (id, offering_id, user_id, shares, amount_cents, status, created_at) "
    "  SELECT sid, :id, u, n, amount, 'held', :now FROM x WHERE EXISTS (SELECT 1 FROM upd) "
    "  RETURNING id) "
    "SELECT count(*) FROM sub"
)


async def reserve_subscriptions(
    session: AsyncSession,
    offering_id: uuid.UUID,
    items: Sequence[tuple[uuid.UUID, uuid.UUID, int, int]],
    *,
    cap: int,
    now: dt.datetime,
) -> bool:
    """Count (subscription id, user, shares, amount) items into the offering, one statement
    (`_RESERVE_MANY`), users distinct: True if all were counted; False if none was (an
    investor over the cap, not open, or they do not fit) and the caller must roll back."""
    if not items:
        return True
    written = await session.scalar(
        _RESERVE_MANY,
        {
            "id": offering_id,
            "users": [i[1] for i in items],
            "shares": [i[2] for i in items],
            "sids": [i[0] for i in items],
            "amounts": [i[3] for i in items],
            "total": sum(i[2] for i in items),
            "count": len(items),
            "cap": cap,
            "now": now,
        },
    )
    return int(written or 0) == len(items)


async def investor_shares(session: AsyncSession, offering_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """What an investor has subscribed to an offering (voided subscriptions excluded)."""
    value = await session.scalar(
        text("SELECT shares FROM rwa_offering_investors WHERE offering_id = :o AND user_id = :u"),
        {"o": offering_id, "u": user_id},
    )
    return int(value or 0)


async def investors_among(
    session: AsyncSession, offering_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of `user_ids` hold a subscription to the offering (one query)."""
    if not user_ids:
        return set()
    rows = await session.execute(
        text(
            "SELECT user_id FROM rwa_offering_investors "
            "WHERE offering_id = :o AND user_id = ANY(:u) AND shares > 0"
        ),
        {"o": offering_id, "u": list(user_ids)},
    )
    return {r[0] for r in rows}


# --- subscriptions --------------------------------------------------------------------------


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
