"""The SQL of the book commands' hot path: lock the market row (which also hands out the
order's sequence number), read the crossing orders with their owners' positions, write everything
the match produced in one statement of data-modifying CTEs, then refresh the market's top of book
and its one-minute candle."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import read_cache
from pull.exchange.models import (
    Order,
)


def _json(value: Any) -> str:
    # orjson writes UUIDs and datetimes (RFC 3339) itself; PostgreSQL reads both
    return orjson.dumps(value, default=str).decode()


ORDER_COLUMNS = [c.name for c in Order.__table__.columns]


@dataclass
class LockedMarket:
    id: uuid.UUID
    ticker: str
    status: str
    taker_fee_bps: int
    maker_fee_bps: int
    seq: int
    close_time: dt.datetime
    yes_bid: int | None = None
    yes_ask: int | None = None


_LOCK = text(
    "UPDATE exchange_markets SET order_seq = order_seq + :n WHERE ticker = :t "
    "RETURNING id, ticker, status, taker_fee_bps, maker_fee_bps, order_seq - :n + 1, "
    "close_time, yes_bid, yes_ask"
)


async def lock_market(session: AsyncSession, ticker: str, count: int = 1) -> LockedMarket | None:
    """Serialize on the market row and take the next `count` order sequence numbers (one
    round trip); `seq` is the first of them. The market's cached reads die when this
    transaction commits (read_cache)."""
    read_cache.touch(session, ticker)
    row = (await session.execute(_LOCK, {"t": ticker, "n": count})).first()
    return LockedMarket(*row) if row else None


_SIDE = """
SELECT * FROM (
    (SELECT 0 AS k, NULL::uuid AS id, p.user_id, NULL::text AS side, NULL::text AS action,
            NULL::int AS yes_price, NULL::bigint AS seq, NULL::int AS remaining_count,
            NULL::bigint AS hold_remaining, NULL::bool AS reduce_only,
            NULL::timestamptz AS expiration_ts, NULL::int AS fill_count,
            NULL::bigint AS maker_fee_basis, NULL::bigint AS maker_fees,
            NULL::bigint AS maker_fill_cost, NULL::bigint AS limit_consumed,
            p.position, p.sell_reserved, p.cost_basis, p.realized_pnl, p.fees_paid, p.volume
     FROM exchange_positions p WHERE p.market_id = :m AND p.user_id = :u)
    UNION ALL
    (SELECT row_number() OVER (ORDER BY {order}, o.seq) AS k, o.id, o.user_id, o.side,
            o.action, o.yes_price, o.seq, o.remaining_count, o.hold_remaining, o.reduce_only,
            o.expiration_ts, o.fill_count, o.maker_fee_basis, o.maker_fees, o.maker_fill_cost,
            o.limit_consumed, p.position, p.sell_reserved, p.cost_basis, p.realized_pnl,
            p.fees_paid, p.volume
     FROM exchange_orders o
     LEFT JOIN exchange_positions p ON p.user_id = o.user_id AND p.market_id = o.market_id
     WHERE o.market_id = :m AND o.status = 'resting' AND o.is_bid = :bid
     ORDER BY {order}, o.seq
     LIMIT :n)
) AS both_ ORDER BY k
"""
_ASKS = text(_SIDE.format(order="o.yes_price ASC"))
_BIDS = text(_SIDE.format(order="o.yes_price DESC"))


async def opposite_side(
    session: AsyncSession,
    *,
    market_id: uuid.UUID,
    taker_is_bid: bool,
    user_id: uuid.UUID,
    n: int,
) -> tuple[Row[Any] | None, Sequence[Row[Any]]]:
    """(the taker's position row, the best `n` resting orders a taker on this side meets -
    crossing or not - best first, with their owners' positions), in one round trip."""
    stmt = _ASKS if taker_is_bid else _BIDS
    rows = (
        await session.execute(stmt, {"m": market_id, "bid": not taker_is_bid, "u": user_id, "n": n})
    ).all()
    if rows and rows[0].k == 0:
        return rows[0], rows[1:]
    return None, rows


async def positions_of(
    session: AsyncSession, market_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Row[Any]]:
    rows = await session.execute(
        text(
            "SELECT user_id, position, sell_reserved, cost_basis, realized_pnl, fees_paid, volume "
            "FROM exchange_positions WHERE market_id = :m AND user_id = ANY(:u)"
        ),
        {"m": market_id, "u": list(user_ids)},
    )
    return {r[0]: r for r in rows}


async def has_stake(session: AsyncSession, market_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """The user holds a position or a resting order in the market."""
    found = await session.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM exchange_positions WHERE market_id = :m AND user_id = :u"
            " AND (position <> 0 OR sell_reserved <> 0))"
            " OR EXISTS (SELECT 1 FROM exchange_orders WHERE market_id = :m AND user_id = :u"
            " AND status = 'resting')"
        ),
        {"m": market_id, "u": user_id},
    )
    return bool(found)


async def order_by_client_id(
    session: AsyncSession, user_id: uuid.UUID, client_order_id: str
) -> Order | None:
    return (
        await session.scalars(
            select(Order).where(Order.user_id == user_id, Order.client_order_id == client_order_id)
        )
    ).first()


_WRITE = text(
    """
WITH
taker AS (
    INSERT INTO exchange_orders
    SELECT * FROM jsonb_populate_record(NULL::exchange_orders, CAST(:order AS jsonb))
    WHERE CAST(:order AS jsonb) <> 'null'::jsonb
    ON CONFLICT (id) DO UPDATE SET ({cols}) = ({excluded})
    RETURNING id
),
makers AS (
    UPDATE exchange_orders o SET
        remaining_count = m.remaining_count, fill_count = m.fill_count, status = m.status,
        hold_remaining = m.hold_remaining, maker_fees = m.maker_fees,
        maker_fee_basis = m.maker_fee_basis, maker_fill_cost = m.maker_fill_cost,
        cancel_reason = m.cancel_reason, updated_at = CAST(:now AS timestamptz)
    FROM jsonb_to_recordset(CAST(:makers AS jsonb)) AS m(
        id uuid, remaining_count int, fill_count int, status text, hold_remaining bigint,
        maker_fees bigint, maker_fee_basis bigint, maker_fill_cost bigint, cancel_reason text)
    WHERE o.id = m.id
    RETURNING o.id
),
src AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('exchange_trades', 'id')) AS tid, t.*
    FROM jsonb_to_recordset(CAST(:trades AS jsonb)) AS t(
        n int, count int, yes_price int, maker_order_id uuid, maker_user_id uuid,
        maker_side text, maker_action text, maker_fee bigint, taker_fee bigint)
    ORDER BY t.n
),
trades AS (
    INSERT INTO exchange_trades (id, market_id, ticker, count, yes_price, taker_side, created_at)
    SELECT tid, CAST(:m AS uuid), :ticker, count, yes_price, :taker_side,
           CAST(:now AS timestamptz)
    FROM src
    RETURNING id
),
fills AS (
    INSERT INTO exchange_fills (trade_id, order_id, user_id, market_id, ticker, side, action,
                                count, yes_price, is_taker, fee, created_at)
    SELECT tid, CAST(:taker_id AS uuid), CAST(:taker_user AS uuid), CAST(:m AS uuid), :ticker,
           :taker_side, :taker_action, count, yes_price, true, taker_fee,
           CAST(:now AS timestamptz)
    FROM src
    UNION ALL
    SELECT tid, maker_order_id, maker_user_id, CAST(:m AS uuid), :ticker, maker_side,
           maker_action, count, yes_price, false, maker_fee, CAST(:now AS timestamptz)
    FROM src
    RETURNING id
),
positions AS (
    INSERT INTO exchange_positions (user_id, market_id, ticker, position, cost_basis,
                                    realized_pnl, fees_paid, volume, sell_reserved, updated_at)
    SELECT p.user_id, CAST(:m AS uuid), :ticker, p.position, p.cost_basis, p.realized_pnl,
           p.fees_paid, p.volume, p.sell_reserved, CAST(:now AS timestamptz)
    FROM jsonb_to_recordset(CAST(:positions AS jsonb)) AS p(
        user_id uuid, position bigint, cost_basis bigint, realized_pnl bigint,
        fees_paid bigint, volume bigint, sell_reserved bigint)
    ON CONFLICT (user_id, market_id) DO UPDATE SET
        position = EXCLUDED.position, cost_basis = EXCLUDED.cost_basis,
        realized_pnl = EXCLUDED.realized_pnl, fees_paid = EXCLUDED.fees_paid,
        volume = EXCLUDED.volume, sell_reserved = EXCLUDED.sell_reserved,
        updated_at = EXCLUDED.updated_at
    RETURNING user_id
),
mk AS (
    UPDATE exchange_markets SET
        yes_bid = CAST(:bid AS int), yes_ask = CAST(:ask AS int),
        last_price = coalesce(CAST(:last AS int), last_price),
        volume = volume + :vol, open_interest = open_interest + :pairs,
        updated_at = CAST(:now AS timestamptz)
    WHERE id = CAST(:m AS uuid)
    RETURNING open_interest
),
candle AS (
    INSERT INTO exchange_candles (market_id, start_ts, price_open, price_high, price_low,
        price_close, bid_open, bid_high, bid_low, bid_close, ask_open, ask_high, ask_low,
        ask_close, volume, open_interest)
    SELECT CAST(:m AS uuid), CAST(:minute AS timestamptz), CAST(:p_open AS int),
           CAST(:p_high AS int), CAST(:p_low AS int), CAST(:last AS int),
           CAST(:bid AS int), CAST(:bid AS int), CAST(:bid AS int), CAST(:bid AS int),
           CAST(:ask AS int), CAST(:ask AS int), CAST(:ask AS int), CAST(:ask AS int),
           :vol, mk.open_interest
    FROM mk
    ON CONFLICT (market_id, start_ts) DO UPDATE SET
        price_open = coalesce(exchange_candles.price_open, EXCLUDED.price_open),
        price_high = greatest(exchange_candles.price_high, EXCLUDED.price_high),
        price_low = least(exchange_candles.price_low, EXCLUDED.price_low),
        price_close = coalesce(EXCLUDED.price_close, exchange_candles.price_close),
        bid_high = greatest(exchange_candles.bid_high, EXCLUDED.bid_high),
        bid_low = least(exchange_candles.bid_low, EXCLUDED.bid_low),
        bid_close = EXCLUDED.bid_close,
        ask_high = greatest(exchange_candles.ask_high, EXCLUDED.ask_high),
        ask_low = least(exchange_candles.ask_low, EXCLUDED.ask_low),
        ask_close = EXCLUDED.ask_close,
        volume = exchange_candles.volume + EXCLUDED.volume,
        open_interest = EXCLUDED.open_interest
    RETURNING 1
),
event AS (
    -- the outbox row (pull.kit.outbox's table), written with the trade it announces
    INSERT INTO outbox_events (topic, key, payload, attempts)
    SELECT 'exchange.trade', :ticker, CAST(:event AS jsonb), 0
    WHERE CAST(:event AS jsonb) <> 'null'::jsonb
    RETURNING id
)
SELECT (SELECT count(*) FROM taker), (SELECT count(*) FROM makers),
       (SELECT count(*) FROM trades), (SELECT count(*) FROM fills),
       (SELECT count(*) FROM positions), (SELECT count(*) FROM candle),
       (SELECT count(*) FROM event)
""".format(  # noqa: S608 - column names from the model, not input
        cols=", ".join(c for c in ORDER_COLUMNS if c != "id"),
        excluded=", ".join(f"EXCLUDED.{c}" for c in ORDER_COLUMNS if c != "id"),
    )
)


async def write_placement(
    session: AsyncSession,
    *,
    market_id: uuid.UUID,
    ticker: str,
    order: dict[str, Any] | None,
    taker_id: uuid.UUID | None,
    taker_user: uuid.UUID | None,
    taker_side: str,
    taker_action: str,
    makers: list[dict[str, Any]],
    trades: list[dict[str, Any]],
    positions: list[dict[str, Any]],
    now: dt.datetime,
    yes_bid: int | None,
    yes_ask: int | None,
    prices: Sequence[int],
    volume: int,
    pairs_delta: int,
    event: dict[str, Any] | None,
) -> None:
    """Everything one match produced, in one statement: the order, makers, trades, fills,
    positions, the market's top of book and counters, its one-minute candle and the outbox
    event. `order` None writes no taker row."""
    if order is None:
        order_json = "null"
    else:
        order_json = _json(order)
    await session.execute(
        _WRITE,
        {
            "order": order_json,
            "makers": _json(makers),
            "trades": _json(trades),
            "positions": _json(positions),
            "m": market_id,
            "ticker": ticker,
            "taker_id": taker_id,
            "taker_user": taker_user,
            "taker_side": taker_side,
            "taker_action": taker_action,
            "now": now,
            "bid": yes_bid,
            "ask": yes_ask,
            "minute": now.replace(second=0, microsecond=0),
            "last": prices[-1] if prices else None,
            "p_open": prices[0] if prices else None,
            "p_high": max(prices) if prices else None,
            "p_low": min(prices) if prices else None,
            "vol": volume,
            "pairs": pairs_delta,
            "event": "null" if event is None else _json(event),
        },
    )


_TOP = text(
    """
WITH top AS (
    SELECT (SELECT max(yes_price) FROM exchange_orders
            WHERE market_id = :m AND status = 'resting' AND is_bid) AS bid,
           (SELECT min(yes_price) FROM exchange_orders
            WHERE market_id = :m AND status = 'resting' AND NOT is_bid) AS ask
),
mk AS (
    UPDATE exchange_markets SET
        yes_bid = top.bid, yes_ask = top.ask,
        last_price = coalesce(CAST(:last AS int), last_price),
        volume = volume + :vol, open_interest = open_interest + :pairs,
        updated_at = CAST(:now AS timestamptz)
    FROM top WHERE id = :m
    RETURNING open_interest
)
INSERT INTO exchange_candles (market_id, start_ts, price_open, price_high, price_low,
    price_close, bid_open, bid_high, bid_low, bid_close, ask_open, ask_high, ask_low, ask_close,
    volume, open_interest)
SELECT :m, CAST(:minute AS timestamptz), CAST(:p_open AS int), CAST(:p_high AS int),
       CAST(:p_low AS int), CAST(:last AS int), top.bid, top.bid, top.bid, top.bid,
       top.ask, top.ask, top.ask, top.ask, :vol, mk.open_interest
FROM top, mk
ON CONFLICT (market_id, start_ts) DO UPDATE SET
    price_open = coalesce(exchange_candles.price_open, EXCLUDED.price_open),
    price_high = greatest(exchange_candles.price_high, EXCLUDED.price_high),
    price_low = least(exchange_candles.price_low, EXCLUDED.price_low),
    price_close = coalesce(EXCLUDED.price_close, exchange_candles.price_close),
    bid_high = greatest(exchange_candles.bid_high, EXCLUDED.bid_high),
    bid_low = least(exchange_candles.bid_low, EXCLUDED.bid_low),
    bid_close = EXCLUDED.bid_close,
    ask_high = greatest(exchange_candles.ask_high, EXCLUDED.ask_high),
    ask_low = least(exchange_candles.ask_low, EXCLUDED.ask_low),
    ask_close = EXCLUDED.ask_close,
    volume = exchange_candles.volume + EXCLUDED.volume,
    open_interest = EXCLUDED.open_interest
RETURNING bid_close, ask_close
"""
)


async def refresh_top(
    session: AsyncSession,
    *,
    market_id: uuid.UUID,
    now: dt.datetime,
    prices: Sequence[int] = (),
    volume: int = 0,
    pairs_delta: int = 0,
) -> tuple[int | None, int | None]:
    """Top of book, last price, volume and open interest on the market row, and this minute's
    candle (trade OHLC and best bid/ask); returns the best YES bid and ask written."""
    minute = now.replace(second=0, microsecond=0)
    row = await session.execute(
        _TOP,
        {
            "m": market_id,
            "minute": minute,
            "last": prices[-1] if prices else None,
            "p_open": prices[0] if prices else None,
            "p_high": max(prices) if prices else None,
            "p_low": min(prices) if prices else None,
            "vol": volume,
            "pairs": pairs_delta,
            "now": now,
        },
    )
    top = row.first()
    return (top[0], top[1]) if top else (None, None)


_FIT_SELLS = text(
    """
WITH p AS (
    SELECT user_id, position FROM exchange_positions
    WHERE market_id = :m AND user_id = ANY(:users)
),
s AS (
    SELECT o.id, o.remaining_count,
           greatest(CASE WHEN o.side = 'yes' THEN p.position ELSE -p.position END, 0) AS held,
           sum(o.remaining_count) OVER (PARTITION BY o.user_id, o.side ORDER BY o.seq) AS cum
    FROM exchange_orders o JOIN p ON p.user_id = o.user_id
    WHERE o.market_id = :m AND o.status = 'resting' AND o.action = 'sell'
),
cut AS (
    SELECT id, greatest(0, least(remaining_count, held - (cum - remaining_count))) AS keep
    FROM s WHERE cum > held
),
upd AS (
    UPDATE exchange_orders o SET
        remaining_count = cut.keep,
        status = CASE WHEN cut.keep = 0 THEN 'canceled' ELSE o.status END,
        cancel_reason = CASE WHEN cut.keep = 0 THEN 'position_closed' ELSE o.cancel_reason END,
        updated_at = now()
    FROM cut WHERE o.id = cut.id
    RETURNING o.id
)
SELECT count(*) FROM upd
"""
)

_RESERVED = text(
    """
UPDATE exchange_positions p SET sell_reserved = coalesce((
    SELECT sum(o.remaining_count) FROM exchange_orders o
    WHERE o.market_id = p.market_id AND o.user_id = p.user_id AND o.status = 'resting'
      AND o.action = 'sell'), 0)
WHERE p.market_id = :m AND p.user_id = ANY(:users)
"""
)


async def fit_sells(session: AsyncSession, market_id: uuid.UUID, users: Sequence[Any]) -> None:
    """Shrink users' resting sells, newest first, to the contracts they still hold."""
    params = {"m": market_id, "users": list(users)}
    await session.execute(_FIT_SELLS, params)
    await session.execute(_RESERVED, params)


async def adjust_sell_reserved(
    session: AsyncSession, market_id: uuid.UUID, user_id: uuid.UUID, delta: int
) -> None:
    await session.execute(
        text(
            "UPDATE exchange_positions SET sell_reserved = sell_reserved + :d "
            "WHERE market_id = :m AND user_id = :u"
        ),
        {"d": delta, "m": market_id, "u": user_id},
    )
