"""Signed Trade API portfolio endpoints: balance, positions, orders, fills and settlements."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from pull.exchange import book_commands
from pull.exchange import service as svc
from pull.exchange.kalshi.auth import (
    IdempotencyKey,
    Limit,
    Reader,
    Signed,
    charge_write,
    page_limit,
    parse_order_id,
)
from pull.exchange.kalshi.errors import batch_error
from pull.exchange.kalshi.schemas import (
    AmendOrderRequest,
    AmendOrderResponse,
    BatchCancelItem,
    BatchCancelOrdersRequest,
    BatchCancelOrdersResponse,
    BatchCreateItem,
    BatchCreateOrdersRequest,
    BatchCreateOrdersResponse,
    CancelOrderResponse,
    CreateOrderRequest,
    CreateOrderResponse,
    DecreaseOrderRequest,
    DecreaseOrderResponse,
    Fill,
    GetBalanceResponse,
    GetFillsResponse,
    GetOrderQueuePositionResponse,
    GetOrderResponse,
    GetOrdersResponse,
    GetPositionsResponse,
    GetSettlementsResponse,
    GetTotalRestingOrderValueResponse,
    Settlement,
)
from pull.exchange.kalshi.translate import (
    Lookups,
    book_side,
    collect,
    in_window,
    outcome_side,
    to_event_positions,
    to_order,
    to_position,
)
from pull.exchange.kalshi.units import (
    BATCH_CANCEL_COST,
    DEFAULT_LIMIT,
    WRITE_COST,
    dollars,
    fp,
    one_of,
    to_ts,
)
from pull.exchange.schemas import (
    OrderAmend,
    OrderCreate,
    OrderDecrease,
    OrderRead,
    PositionRead,
)
from pull.kit.db import SessionDep
from pull.kit.errors import AppError, BadRequest, NotFound
from pull.kit.pagination import MAX_LIMIT
from pull.ledger import service as ledger

# --- signed portfolio endpoints --------------------------------------------------------------

portfolio = APIRouter(prefix="/portfolio", tags=["portfolio"])


@portfolio.get("/balance", summary="Cash available to trade, in cents")
async def get_balance(user: Reader, session: SessionDep) -> GetBalanceResponse:
    balance = await ledger.get_balance(session=session, user_id=user.id)
    exposure = 0
    cursor: str | None = None
    while True:
        page = await svc.list_positions(
            session=session, user_id=user.id, cursor=cursor, limit=MAX_LIMIT
        )
        exposure += sum(p.market_exposure for p in page.items)
        cursor = page.cursor
        if not cursor:
            break
    return GetBalanceResponse(
        balance=balance.available,
        balance_dollars=dollars(balance.available),
        portfolio_value=exposure,
        updated_ts=int(time.time()),
    )


@portfolio.get("/positions", summary="Market and event positions")
async def get_positions(
    user: Reader,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    ticker: str | None = None,
    event_ticker: str | None = None,
    count_filter: Annotated[
        str | None, Query(description="Comma-separated: position, total_traded")
    ] = None,
) -> GetPositionsResponse:
    lookups = Lookups(session)
    wanted = {f.strip() for f in count_filter.split(",") if f.strip()} if count_filter else set()
    if not wanted <= {"position", "total_traded"}:
        raise BadRequest("count_filter takes position and total_traded", code="INVALID_PARAMETERS")

    async def fetch(c: str | None, n: int) -> tuple[Sequence[PositionRead], str | None]:
        page = await svc.list_positions(
            session=session, user_id=user.id, ticker=ticker, cursor=c, limit=n
        )
        await lookups.event_tickers([p.ticker for p in page.items])
        return page.items, page.cursor

    def keep(p: PositionRead) -> bool:
        if event_ticker is not None and lookups.market_events.get(p.ticker) != event_ticker:
            return False
        if wanted:
            return ("position" in wanted and p.position != 0) or (
                "total_traded" in wanted and p.total_traded != 0
            )
        return True

    filtered = event_ticker is not None or bool(wanted)
    got = await collect(fetch, keep if filtered else None, cursor=cursor, limit=page_limit(limit))
    rows: list[PositionRead] = got.items
    market_positions = [to_position(p, lookups.market_events.get(p.ticker, "")) for p in rows]
    volume = {p.ticker: p.total_traded for p in rows}
    return GetPositionsResponse(
        market_positions=market_positions,
        event_positions=to_event_positions(market_positions, volume),
        positions=market_positions,
        cursor=got.cursor,
    )


@portfolio.get("/orders", summary="The caller's orders, newest first")
async def get_orders(
    user: Reader,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    ticker: str | None = None,
    event_ticker: str | None = None,
    min_ts: int | None = None,
    max_ts: int | None = None,
    status_filter: Annotated[
        str | None, Query(alias="status", description="resting | canceled | executed")
    ] = None,
) -> GetOrdersResponse:
    if status_filter is not None and status_filter not in (
        "resting",
        "canceled",
        "executed",
        "pending",
    ):
        raise BadRequest("status is resting, canceled or executed", code="INVALID_PARAMETERS")
    lookups = Lookups(session)

    async def fetch(c: str | None, n: int) -> tuple[Sequence[OrderRead], str | None]:
        page = await svc.list_orders(
            session=session, user_id=user.id, ticker=ticker, status=status_filter, cursor=c, limit=n
        )
        if event_ticker is not None:
            await lookups.event_tickers([o.ticker for o in page.items])
        return page.items, page.cursor

    def keep(o: OrderRead) -> bool:
        if event_ticker is not None and lookups.market_events.get(o.ticker) != event_ticker:
            return False
        return in_window(o.created_time, min_ts, max_ts)

    filtered = event_ticker is not None or min_ts is not None or max_ts is not None
    got = await collect(fetch, keep if filtered else None, cursor=cursor, limit=page_limit(limit))
    return GetOrdersResponse(orders=[to_order(o) for o in got.items], cursor=got.cursor)


def to_order_create(body: CreateOrderRequest) -> OrderCreate:
    if body.order_group_id is not None:
        raise BadRequest("PULL has no order groups", code="ORDER_GROUPS_NOT_SUPPORTED")
    if body.cancel_order_on_pause:
        raise BadRequest(
            "cancel_order_on_pause is not supported", code="CANCEL_ON_PAUSE_NOT_SUPPORTED"
        )
    count = one_of(body.count, body.count_fp, "count")
    if count is None:
        raise BadRequest("count (or count_fp) is required", code="INVALID_PARAMETERS")
    values: dict[str, Any] = {
        "ticker": body.ticker,
        "side": body.side,
        "action": body.action,
        "count": count,
        "type": body.type,
        "yes_price": one_of(body.yes_price, body.yes_price_dollars, "yes_price"),
        "no_price": one_of(body.no_price, body.no_price_dollars, "no_price"),
        "expiration_ts": body.expiration_ts,
        "client_order_id": body.client_order_id,
        "post_only": body.post_only,
        "reduce_only": body.reduce_only or body.sell_position_floor == 0,
        "buy_max_cost": body.buy_max_cost,
    }
    if body.time_in_force is not None:
        values["time_in_force"] = body.time_in_force
    if body.self_trade_prevention_type is not None:
        values["self_trade_prevention_type"] = body.self_trade_prevention_type
    return OrderCreate.model_validate(values)


@portfolio.post(
    "/orders", status_code=status.HTTP_201_CREATED, summary="Place an order (write tier: 1)"
)
async def create_order(
    body: CreateOrderRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
) -> CreateOrderResponse:
    data = to_order_create(body)
    await charge_write(request, response, user, WRITE_COST)
    placed = await book_commands.place(session=session, user=user, data=data)
    if placed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return CreateOrderResponse(order=to_order(placed.order))


@portfolio.post(
    "/orders/batched",
    summary="Place up to 20 orders (write tier: 1 each); HTTP 200 as SDK 2.1.4 expects",
)
async def batch_create_orders(
    body: BatchCreateOrdersRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
) -> BatchCreateOrdersResponse:
    orders = [to_order_create(o) for o in body.orders]
    await charge_write(request, response, user, WRITE_COST * len(orders))
    results = await book_commands.place_batch(session=session, user=user, orders=orders)
    items = []
    for data, r in zip(orders, results, strict=True):
        err = None
        if r.error is not None:
            err = batch_error(AppError(r.error.message, code=r.error.code, details=r.error.details))
        items.append(
            BatchCreateItem(
                order=None if r.order is None else to_order(r.order),
                error=err,
                client_order_id=r.client_order_id or data.client_order_id,
            )
        )
    return BatchCreateOrdersResponse(orders=items, responses=items)


@portfolio.delete("/orders/batched", summary="Cancel up to 20 orders (write tier: 0.2 each)")
async def batch_cancel_orders(
    body: BatchCancelOrdersRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
) -> BatchCancelOrdersResponse:
    raw = [*(body.ids or []), *(body.order_ids or []), *(o.order_id for o in body.orders or [])]
    if not 1 <= len(raw) <= 20:
        raise BadRequest("Give 1 to 20 order ids", code="INVALID_PARAMETERS")
    await charge_write(request, response, user, BATCH_CANCEL_COST * len(raw))
    ids: list[uuid.UUID] = []
    unknown: dict[int, str] = {}
    for i, given in enumerate(raw):
        try:
            ids.append(uuid.UUID(given))
        except ValueError:
            unknown[i] = given
    results = iter(await book_commands.cancel_batch(session=session, user=user, order_ids=ids))
    items: list[BatchCancelItem] = []
    for i, r_id in enumerate(raw):
        if i in unknown:
            missing = NotFound("Order not found", code="ORDER_NOT_FOUND")
            items.append(
                BatchCancelItem(
                    order_id=r_id, reduced_by=0, reduced_by_fp=fp(0), error=batch_error(missing)
                )
            )
            continue
        r = next(results)
        if r.error is not None or r.order is None:
            e = r.error
            exc = AppError(
                e.message if e else "Order not canceled",
                code=e.code if e else "CANCEL_FAILED",
                details=e.details if e else None,
            )
            items.append(
                BatchCancelItem(
                    order_id=r_id, reduced_by=0, reduced_by_fp=fp(0), error=batch_error(exc)
                )
            )
            continue
        items.append(
            BatchCancelItem(
                order_id=r_id,
                order=to_order(r.order),
                reduced_by=r.reduced_by,
                reduced_by_fp=fp(r.reduced_by),
            )
        )
    return BatchCancelOrdersResponse(orders=items, responses=items)


@portfolio.get("/orders/{order_id}", summary="One of the caller's orders")
async def get_order(order_id: str, user: Reader, session: SessionDep) -> GetOrderResponse:
    order = await svc.get_order(session=session, user_id=user.id, order_id=parse_order_id(order_id))
    return GetOrderResponse(order=to_order(order))


@portfolio.get(
    "/orders/{order_id}/queue_position",
    summary="Contracts resting ahead of this order at its price",
)
async def get_order_queue_position(
    order_id: str, user: Reader, session: SessionDep
) -> GetOrderQueuePositionResponse:
    order = await svc.get_order(session=session, user_id=user.id, order_id=parse_order_id(order_id))
    return GetOrderQueuePositionResponse(queue_position=order.queue_position or 0)


@portfolio.delete("/orders/{order_id}", summary="Cancel an order (write tier: 1)")
async def cancel_order(
    order_id: str, request: Request, response: Response, user: Signed, session: SessionDep
) -> CancelOrderResponse:
    oid = parse_order_id(order_id)
    await charge_write(request, response, user, WRITE_COST)
    done = await book_commands.cancel(session=session, user=user, order_id=oid)
    assert done.order is not None
    reduced = done.reduced_by
    return CancelOrderResponse(
        order=to_order(done.order), reduced_by=reduced, reduced_by_fp=fp(reduced)
    )


@portfolio.post("/orders/{order_id}/amend", summary="Change price and/or size (write tier: 1)")
async def amend_order(
    order_id: str,
    body: AmendOrderRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
    idempotency_key: IdempotencyKey = None,
) -> AmendOrderResponse:
    oid = parse_order_id(order_id)
    await charge_write(request, response, user, WRITE_COST)
    if body.updated_client_order_id is not None:
        raise BadRequest("updated_client_order_id is not supported", code="INVALID_PARAMETERS")
    yes_given = one_of(body.yes_price, body.yes_price_dollars, "yes_price")
    no_given = one_of(body.no_price, body.no_price_dollars, "no_price")
    count = one_of(body.count, body.count_fp, "count")

    def change(old: OrderRead) -> OrderAmend:
        """The amend in PULL's terms, from the order as it is under its market's gate."""
        for name in ("ticker", "side", "action", "client_order_id"):
            given = getattr(body, name)
            if given is not None and given != getattr(old, name):
                raise BadRequest(
                    f"{name} does not match the order",
                    code="INVALID_PARAMETERS",
                    details={name: given},
                )
        yes_price, no_price = yes_given, no_given
        if yes_price is None and no_price is None:
            yes_price = old.yes_price if old.side == "yes" else None
            no_price = old.no_price if old.side == "no" else None
        return OrderAmend(
            yes_price=yes_price,
            no_price=no_price,
            count=old.initial_count if count is None else count,
        )

    done = await book_commands.amend(
        session=session,
        user=user,
        order_id=oid,
        data=change,
        idempotency_key=idempotency_key,
        request=body.model_dump(mode="json"),
    )
    if done.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    old, order = done.old, done.order
    return AmendOrderResponse(old_order=to_order(old), order=to_order(order))


@portfolio.post("/orders/{order_id}/decrease", summary="Shrink a resting order (write tier: 1)")
async def decrease_order(
    order_id: str,
    body: DecreaseOrderRequest,
    request: Request,
    response: Response,
    user: Signed,
    session: SessionDep,
    idempotency_key: IdempotencyKey = None,
) -> DecreaseOrderResponse:
    oid = parse_order_id(order_id)
    data = OrderDecrease(
        reduce_by=one_of(body.reduce_by, body.reduce_by_fp, "reduce_by"),
        reduce_to=one_of(body.reduce_to, body.reduce_to_fp, "reduce_to"),
    )
    await charge_write(request, response, user, WRITE_COST)
    done = await book_commands.decrease(
        session=session, user=user, order_id=oid, data=data, idempotency_key=idempotency_key
    )
    if done.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return DecreaseOrderResponse(order=to_order(done.order))


@portfolio.get("/fills", summary="The caller's fills, newest first")
async def get_fills(
    user: Reader,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    ticker: str | None = None,
    order_id: str | None = None,
    min_ts: int | None = None,
    max_ts: int | None = None,
) -> GetFillsResponse:
    oid = None if order_id is None else parse_order_id(order_id)

    async def fetch(c: str | None, n: int) -> tuple[Sequence[Any], str | None]:
        page = await svc.list_fills(
            session=session, user_id=user.id, ticker=ticker, order_id=oid, cursor=c, limit=n
        )
        return page.items, page.cursor

    filtered = min_ts is not None or max_ts is not None
    got = await collect(
        fetch,
        (lambda f: in_window(f.created_time, min_ts, max_ts)) if filtered else None,
        cursor=cursor,
        limit=page_limit(limit),
    )
    return GetFillsResponse(
        fills=[
            Fill(
                fill_id=str(f.fill_id),
                trade_id=str(f.trade_id),
                order_id=str(f.order_id),
                ticker=f.ticker,
                market_ticker=f.ticker,
                side=f.side,
                action=f.action,
                count=f.count,
                count_fp=fp(f.count),
                yes_price=f.yes_price,
                no_price=f.no_price,
                yes_price_dollars=dollars(f.yes_price),
                no_price_dollars=dollars(f.no_price),
                price=f.yes_price if f.side == "yes" else f.no_price,
                outcome_side=outcome_side(f.side, f.action),
                book_side=book_side(f.side, f.action),
                is_taker=f.is_taker,
                fee_cost=dollars(f.fee),
                fee=f.fee,
                created_time=f.created_time,
                ts=to_ts(f.created_time),
            )
            for f in got.items
        ],
        cursor=got.cursor,
    )


@portfolio.get("/settlements", summary="The caller's settled positions, newest first")
async def get_settlements(
    user: Reader,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    ticker: str | None = None,
    event_ticker: str | None = None,
    min_ts: int | None = None,
    max_ts: int | None = None,
) -> GetSettlementsResponse:
    lookups = Lookups(session)

    async def fetch(c: str | None, n: int) -> tuple[Sequence[Any], str | None]:
        page = await svc.list_settlements(session=session, user_id=user.id, cursor=c, limit=n)
        await lookups.event_tickers([s.ticker for s in page.items])
        return page.items, page.cursor

    def keep(s: Any) -> bool:
        if ticker is not None and s.ticker != ticker:
            return False
        if event_ticker is not None and lookups.market_events.get(s.ticker) != event_ticker:
            return False
        return in_window(s.settled_time, min_ts, max_ts)

    filtered = any(v is not None for v in (ticker, event_ticker, min_ts, max_ts))
    got = await collect(fetch, keep if filtered else None, cursor=cursor, limit=page_limit(limit))
    return GetSettlementsResponse(
        settlements=[
            Settlement(
                ticker=s.ticker,
                event_ticker=lookups.market_events.get(s.ticker) or "",
                market_result=s.market_result,
                result=s.market_result,
                yes_count=s.yes_count,
                yes_count_fp=fp(s.yes_count),
                no_count=s.no_count,
                no_count_fp=fp(s.no_count),
                revenue=s.revenue,
                revenue_dollars=dollars(s.revenue),
                cost_basis=s.cost_basis,
                # a position is one-sided: its cost is the held side's
                yes_total_cost_dollars=dollars(s.cost_basis if s.yes_count else 0),
                no_total_cost_dollars=dollars(s.cost_basis if s.no_count else 0),
                settled_time=s.settled_time,
            )
            for s in got.items
        ],
        cursor=got.cursor,
    )


@portfolio.get(
    "/summary/total_resting_order_value",
    summary="Cents committed to the caller's resting buy orders (price x remaining count)",
)
async def total_resting_order_value(
    user: Reader, session: SessionDep
) -> GetTotalRestingOrderValueResponse:
    total = 0
    cursor: str | None = None
    while True:
        page = await svc.list_orders(
            session=session, user_id=user.id, status="resting", cursor=cursor, limit=MAX_LIMIT
        )
        for o in page.items:
            if o.action == "buy":
                price = o.yes_price if o.side == "yes" else o.no_price
                total += price * o.remaining_count
        cursor = page.cursor
        if not cursor:
            break
    return GetTotalRestingOrderValueResponse(total_resting_order_value=total)
