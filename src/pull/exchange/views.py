"""Row -> schema and row -> engine value builders shared by the exchange's services, and the
small parsers of timestamps and integer cursors that its reads share.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pull.exchange import book_repository as book_repo
from pull.exchange.engine import (
    BookOrder,
    PositionState,
)
from pull.exchange.errors import (
    InvalidOrder,
)
from pull.exchange.models import Order
from pull.exchange.schemas import (
    OrderRead,
)
from pull.kit.pagination import decode_cursor


def order_values(o: Order) -> dict[str, Any]:
    return {c: getattr(o, c) for c in book_repo.ORDER_COLUMNS}


def order_read(v: dict[str, Any], queue_position: int | None = None) -> OrderRead:
    return OrderRead(
        order_id=v["id"],
        user_id=v["user_id"],
        client_order_id=v["client_order_id"],
        ticker=v["ticker"],
        side=v["side"],
        action=v["action"],
        type=v["type"],
        status=v["status"],
        yes_price=v["yes_price"],
        no_price=100 - v["yes_price"],
        time_in_force=v["time_in_force"],
        expiration_time=v["expiration_ts"],
        initial_count=v["initial_count"],
        fill_count=v["fill_count"],
        remaining_count=v["remaining_count"],
        taker_fees=v["taker_fees"],
        maker_fees=v["maker_fees"],
        taker_fill_cost=v["taker_fill_cost"],
        maker_fill_cost=v["maker_fill_cost"],
        post_only=v["post_only"],
        reduce_only=v["reduce_only"],
        buy_max_cost=v["buy_max_cost"],
        self_trade_prevention_type=v["self_trade_prevention_type"],
        queue_position=queue_position,
        cancel_reason=v["cancel_reason"],
        created_time=v["created_at"],
        last_update_time=v["updated_at"],
    )


def position_state(row: Any) -> PositionState:
    return PositionState(
        position=int(row.position),
        sell_reserved=int(row.sell_reserved),
        cost_basis=int(row.cost_basis),
        realized_pnl=int(row.realized_pnl),
        fees_paid=int(row.fees_paid),
        volume=int(row.volume),
    )


def book_order(row: Any) -> BookOrder:
    return BookOrder(
        id=row.id,
        user_id=row.user_id,
        side=row.side,
        action=row.action,
        yes_price=row.yes_price,
        seq=row.seq,
        remaining=row.remaining_count,
        hold=row.hold_remaining,
        reduce_only=row.reduce_only,
        expiration_ts=row.expiration_ts,
        fill_count=row.fill_count,
        maker_fee_basis=row.maker_fee_basis,
        maker_fees=row.maker_fees,
        maker_fill_cost=row.maker_fill_cost,
    )


def unix_time(ts: int, name: str) -> dt.datetime:
    """A Unix time from the caller; one no calendar holds is 400, not a 500."""
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidOrder(f"{name} is not a valid time", code="INVALID_TIMESTAMP") from None


def int_cursor(cursor: str | None, key: str = "id") -> int | None:
    c = decode_cursor(cursor)
    if not c:
        return None
    value = c.get(key)
    if not isinstance(value, int):
        raise InvalidOrder("Invalid cursor", code="INVALID_CURSOR")
    return value
