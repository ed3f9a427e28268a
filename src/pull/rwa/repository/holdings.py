"""SQL of the portfolio's reads: lots, marks, shares reserved by resting sells."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

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


async def lots_version(session: AsyncSession, user_id: uuid.UUID) -> tuple[int, ...]:
    """(count of issued subscriptions, count and max id of secondary trades) of the user.
    `issued` is a subscription's final state (held -> issued | voided, never back), and trades
    are insert-only, so both counts only grow when `user_lot_events` would change."""
    row = (
        await session.execute(
            text(
                "SELECT (SELECT count(*) FROM rwa_subscriptions "
                "         WHERE user_id = :u AND status = 'issued'), "
                "       (SELECT count(*) FROM rwa_trades t "
                "         WHERE (t.buyer_id = :u OR t.seller_id = :u) "
                "           AND t.buyer_id <> t.seller_id), "
                "       (SELECT coalesce(max(id), 0) FROM rwa_trades t "
                "         WHERE (t.buyer_id = :u OR t.seller_id = :u) "
                "           AND t.buyer_id <> t.seller_id)"
            ),
            {"u": user_id},
        )
    ).one()
    return tuple(int(v) for v in row)


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
