"""Kalshi's V2 order entry (`/portfolio/events/orders`), the only order entry of its current
SDKs (3.x): one book per market with `bid` (buy YES at `price`) and `ask` (sell YES at `price`,
which PULL books as buying NO at 1 - `price`: positions are signed, so it closes a YES
position or opens a NO one), prices as dollar strings and counts as `_fp` strings. Each call
is the same book command as `/portfolio/orders`; see docs/kalshi-compatibility.md."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel

from pull.exchange import book_commands
from pull.exchange.kalshi.auth import Signed, charge_write, parse_order_id
from pull.exchange.kalshi.units import WRITE_COST, dollars, fp, parse_dollars, parse_fp
from pull.exchange.schemas import OrderCreate, OrderRead
from pull.kit.db import SessionDep
from pull.kit.errors import BadRequest

router = APIRouter(prefix="/portfolio/events", tags=["orders v2"])


class CreateOrderV2Request(BaseModel):
    ticker: str
    side: Literal["bid", "ask"]
    count: str
    price: str
    time_in_force: Literal["good_till_canceled", "immediate_or_cancel", "fill_or_kill"]
    self_trade_prevention_type: Literal["taker_at_cross", "maker"] = "taker_at_cross"
    client_order_id: str | None = None
    expiration_time: int | None = None
    post_only: bool | None = None
    reduce_only: bool | None = None
    cancel_order_on_pause: bool | None = None
    subaccount: int | None = None
    order_group_id: str | None = None
    exchange_index: int | None = None


class CreateOrderV2Response(BaseModel):
    order_id: str
    client_order_id: str | None
    fill_count: str
    remaining_count: str
    average_fill_price: str | None = None
    average_fee_paid: str | None = None
    ts_ms: int


class CancelOrderV2Response(BaseModel):
    order_id: str
    client_order_id: str | None
    reduced_by: str
    ts_ms: int


def to_order_create(body: CreateOrderV2Request) -> OrderCreate:
    if body.order_group_id is not None:
        raise BadRequest("PULL has no order groups", code="ORDER_GROUPS_NOT_SUPPORTED")
    if body.subaccount not in (None, 0):
        raise BadRequest("PULL has no subaccounts", code="SUBACCOUNTS_NOT_SUPPORTED")
    if body.cancel_order_on_pause:
        raise BadRequest(
            "cancel_order_on_pause is not supported", code="CANCEL_ON_PAUSE_NOT_SUPPORTED"
        )
    price = parse_dollars(body.price, "price")
    bid = body.side == "bid"
    return OrderCreate.model_validate(
        {
            "ticker": body.ticker,
            "side": "yes" if bid else "no",
            "action": "buy",
            "count": parse_fp(body.count, "count"),
            "yes_price" if bid else "no_price": price if bid else 100 - price,
            "time_in_force": body.time_in_force,
            "expiration_ts": body.expiration_time,
            "client_order_id": body.client_order_id,
            "post_only": bool(body.post_only),
            "reduce_only": bool(body.reduce_only),
            "self_trade_prevention_type": body.self_trade_prevention_type,
        }
    )


def _average_fill(o: OrderRead) -> str | None:
    if not o.fill_count:
        return None
    cost = Decimal(o.taker_fill_cost + o.maker_fill_cost) / o.fill_count
    if o.side == "no":  # in the YES book's terms
        cost = 100 - cost
    return f"{cost / 100:.4f}"


@router.post("/orders", status_code=status.HTTP_201_CREATED, summary="Place an order (V2)")
async def create_order_v2(
    body: CreateOrderV2Request,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
) -> CreateOrderV2Response:
    data = to_order_create(body)
    await charge_write(request, response, user, WRITE_COST)
    placed = await book_commands.place(session=session, user=user, data=data)
    o = placed.order
    fees = o.taker_fees + o.maker_fees
    return CreateOrderV2Response(
        order_id=str(o.order_id),
        client_order_id=o.client_order_id,
        fill_count=fp(o.fill_count),
        remaining_count=fp(o.remaining_count),
        average_fill_price=_average_fill(o),
        average_fee_paid=dollars(fees // o.fill_count) if o.fill_count else None,
        ts_ms=int(o.last_update_time.timestamp() * 1000),
    )


@router.delete("/orders/{order_id}", summary="Cancel an order (V2)")
async def cancel_order_v2(
    order_id: str, request: Request, response: Response, user: Signed, session: SessionDep
) -> CancelOrderV2Response:
    oid = parse_order_id(order_id)
    await charge_write(request, response, user, WRITE_COST)
    done = await book_commands.cancel(session=session, user=user, order_id=oid)
    assert done.order is not None
    return CancelOrderV2Response(
        order_id=str(done.order_id),
        client_order_id=done.order.client_order_id,
        reduced_by=fp(done.reduced_by),
        ts_ms=int(time.time() * 1000),
    )
