"""Trading routes (`/api/v1/trading`): the broker account, orders, fills, positions, buying
power, trades, assets and quotes; sandbox controls; admin reconciliation and alerts."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import JSONResponse

from pull.brokerage import accounts, orders, service
from pull.brokerage import repository as repo
from pull.brokerage.errors import OrderRejected
from pull.brokerage.providers.base import Broker, BrokerError, BrokerNotFound, BrokerRejected
from pull.brokerage.providers.factory import make_broker
from pull.brokerage.providers.sandbox import SandboxBroker
from pull.brokerage.reconcile import reconcile
from pull.brokerage.schemas import (
    AccountRead,
    AssetList,
    BuyingPower,
    FillList,
    OrderCreate,
    OrderPage,
    OrderRead,
    OrderReplace,
    PositionList,
    QuoteRead,
    ReconcileReport,
    SandboxClockSet,
    SandboxQuoteSet,
    TradePage,
)
from pull.identity.deps import ActiveUser, AdminUser, CurrentUser
from pull.kit.crypto import FieldCipher
from pull.kit.db import SessionDep
from pull.kit.errors import BadRequest, NotFound, Unprocessable
from pull.kit.idempotency import optional_idempotency_key
from pull.kit.pagination import (
    clamp_limit,
    created_before,
    created_next,
    decode_cursor,
    encode_cursor,
)
from pull.kit.ratelimit import general, trading_routes

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    429: {"description": "Rate limited"},
}
router = APIRouter(prefix="/api/v1/trading", tags=["trading"], responses=_ERRORS)
admin_router = APIRouter(prefix="/api/admin/brokerage", tags=["admin"], responses=_ERRORS)
relaxed = [Depends(general)]
trading = [Depends(trading_routes)]


def broker(request: Request) -> Broker:
    return make_broker(request.app.state.settings, request.app.state.sessionmaker)


def cipher(request: Request) -> FieldCipher:
    found: FieldCipher | None = getattr(request.app.state, "brokerage_cipher", None)
    if found is None:
        found = FieldCipher(request.app.state.settings.field_encryption_keys)
        request.app.state.brokerage_cipher = found
    return found


BrokerDep = Annotated[Broker, Depends(broker)]
OptionalKey = Annotated[str | None, Depends(optional_idempotency_key)]


def _sandbox(b: Broker) -> SandboxBroker:
    if not isinstance(b, SandboxBroker):
        raise NotFound()
    return b


# --- account -------------------------------------------------------------------------------------


@router.post(
    "/account",
    response_model=AccountRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=relaxed,
    summary="Open the caller's brokerage account from their approved KYC data (KYC standard)",
    responses={
        200: {"description": "Already open"},
        403: {"description": "KYC_REQUIRED"},
        409: {"description": "KYC_DATA_MISSING"},
    },
)
async def open_account(
    user: ActiveUser, session: SessionDep, b: BrokerDep, request: Request
) -> JSONResponse:
    account, created = await accounts.open_account(
        session=session,
        broker=b,
        cipher=cipher(request),
        user_id=user.id,
        ip_address=request.client.host if request.client else "127.0.0.1",
    )
    return JSONResponse(account.model_dump(mode="json"), status_code=201 if created else 200)


@router.get(
    "/account",
    response_model=AccountRead,
    dependencies=relaxed,
    responses={403: {"description": "BROKERAGE_ACCOUNT_REQUIRED"}},
)
async def get_account(user: CurrentUser, session: SessionDep) -> AccountRead:
    row = await accounts.require_account(session=session, user_id=user.id)
    return accounts.account_read(row)


# --- orders --------------------------------------------------------------------------------------


@router.post(
    "/orders",
    response_model=OrderRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=trading,
    summary="Place an order (client_order_id or Idempotency-Key); buys hold cash at submit",
    responses={
        200: {"description": "A replay of an earlier request (Idempotent-Replayed: true)"},
        400: {"description": "PRICE_NOT_ALLOWED, QTY_OR_NOTIONAL, INVALID_ORDER, ..."},
        403: {"description": "BROKERAGE_ACCOUNT_REQUIRED, KYC_REQUIRED, LIMIT_EXCEEDED"},
        404: {"description": "ASSET_NOT_FOUND"},
        409: {"description": "INSUFFICIENT_FUNDS, INSUFFICIENT_SHARES, IDEMPOTENCY_KEY_REUSED"},
        422: {"description": "ORDER_REJECTED, ASSET_NOT_TRADABLE"},
    },
)
async def place_order(
    body: OrderCreate,
    user: ActiveUser,
    session: SessionDep,
    b: BrokerDep,
    request: Request,
    key: OptionalKey = None,
) -> JSONResponse:
    intake = await orders.prepare(
        session=session,
        broker=b,
        user_id=user.id,
        data=body,
        idempotency_key=key,
        buffer_bps=request.app.state.settings.brokerage_market_buffer_bps,
    )
    if intake.replayed:
        return JSONResponse(
            intake.order.model_dump(mode="json"),
            status_code=200,
            headers={"Idempotent-Replayed": "true"},
        )
    await session.commit()
    sent = await orders.send(session=session, broker=b, order_id=intake.order_id)
    await session.commit()
    if sent.status == "rejected":
        raise OrderRejected(sent.reject_reason, details={"order": sent.model_dump(mode="json")})
    return JSONResponse(sent.model_dump(mode="json"), status_code=201)


@router.get("/orders", response_model=OrderPage, dependencies=relaxed)
async def list_orders(
    user: CurrentUser,
    session: SessionDep,
    cursor: str | None = Query(None, max_length=500),
    limit: int | None = Query(None),
    status_: str | None = Query(None, alias="status", pattern="^(open|closed|all)$"),
    symbol: str | None = Query(None, max_length=32),
) -> OrderPage:
    size = clamp_limit(limit)
    items = await service.list_orders(
        session=session,
        user_id=user.id,
        before=created_before(cursor),
        limit=size + 1,
        status=status_,
        symbol=symbol.upper() if symbol else None,
    )
    return OrderPage(items=items[:size], cursor=created_next(items, size))


@router.get(
    "/orders/{order_id}",
    response_model=OrderRead,
    dependencies=relaxed,
    responses={404: {"description": "ORDER_NOT_FOUND"}},
)
async def get_order(order_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> OrderRead:
    return await service.get_order(session=session, user_id=user.id, order_id=order_id)


@router.get(
    "/orders/{order_id}/fills",
    response_model=FillList,
    dependencies=relaxed,
    responses={404: {"description": "ORDER_NOT_FOUND"}},
)
async def order_fills(order_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> FillList:
    return FillList(items=await service.fills(session=session, user_id=user.id, order_id=order_id))


@router.delete(
    "/orders/{order_id}",
    response_model=OrderRead,
    dependencies=trading,
    summary="Cancel an open order; the rest of its hold is released",
    responses={
        404: {"description": "ORDER_NOT_FOUND"},
        409: {"description": "ORDER_NOT_CANCELABLE"},
    },
)
async def cancel_order(
    order_id: uuid.UUID, user: ActiveUser, session: SessionDep, b: BrokerDep
) -> OrderRead:
    return await orders.cancel(session=session, broker=b, user_id=user.id, order_id=order_id)


@router.patch(
    "/orders/{order_id}",
    response_model=OrderRead,
    dependencies=trading,
    summary="Replace an open order (a new order that replaces it, as Alpaca does)",
    responses={
        404: {"description": "ORDER_NOT_FOUND"},
        409: {"description": "ORDER_NOT_REPLACEABLE, INSUFFICIENT_FUNDS"},
        422: {"description": "ORDER_REJECTED"},
    },
)
async def replace_order(
    order_id: uuid.UUID,
    body: OrderReplace,
    user: ActiveUser,
    session: SessionDep,
    b: BrokerDep,
    request: Request,
    key: OptionalKey = None,
) -> JSONResponse:
    intake = await orders.prepare_replace(
        session=session,
        broker=b,
        user_id=user.id,
        order_id=order_id,
        data=body,
        idempotency_key=key,
        buffer_bps=request.app.state.settings.brokerage_market_buffer_bps,
    )
    if intake.replayed:
        return JSONResponse(
            intake.order.model_dump(mode="json"), headers={"Idempotent-Replayed": "true"}
        )
    await session.commit()
    new = await orders.send_replace(
        session=session, broker=b, old_id=order_id, new_id=intake.order_id
    )
    await session.commit()
    if new.status == "rejected":
        raise OrderRejected(new.reject_reason, details={"order": new.model_dump(mode="json")})
    return JSONResponse(new.model_dump(mode="json"))


# --- positions, money, history -----------------------------------------------------------------


@router.get("/positions", response_model=PositionList, dependencies=relaxed)
async def positions(user: CurrentUser, session: SessionDep, b: BrokerDep) -> PositionList:
    return PositionList(items=await service.positions(session=session, broker=b, user_id=user.id))


@router.get("/buying-power", response_model=BuyingPower, dependencies=relaxed)
async def buying_power(user: CurrentUser, session: SessionDep) -> BuyingPower:
    return await service.buying_power(session=session, user_id=user.id)


@router.get("/trades", response_model=TradePage, dependencies=relaxed)
async def trades(
    user: CurrentUser,
    session: SessionDep,
    cursor: str | None = Query(None, max_length=500),
    limit: int | None = Query(None),
) -> TradePage:
    size = clamp_limit(limit)
    value = decode_cursor(cursor)
    before = None
    if value is not None:
        raw = value.get("id")
        if not isinstance(raw, int) or raw < 0 or raw > 2**62:
            raise BadRequest("Invalid cursor", code="INVALID_CURSOR")
        before = raw
    rows = await service.trades(session=session, user_id=user.id, before=before, limit=size + 1)
    nxt = encode_cursor({"id": rows[size - 1][0]}) if len(rows) > size else None
    return TradePage(items=[t for _, t in rows[:size]], cursor=nxt)


@router.get("/assets", response_model=AssetList, dependencies=relaxed)
async def assets(
    user: CurrentUser, b: BrokerDep, q: str | None = Query(None, max_length=64)
) -> AssetList:
    return AssetList(items=await service.assets(broker=b, query=q))


@router.get(
    "/quotes/{symbol:path}",
    response_model=QuoteRead,
    dependencies=relaxed,
    responses={404: {"description": "ASSET_NOT_FOUND"}},
)
async def quote(user: CurrentUser, b: BrokerDep, symbol: str = Path(max_length=32)) -> QuoteRead:
    return await service.quote(broker=b, symbol=symbol)


# --- sandbox controls (404 with a real broker) --------------------------------------------------


@router.put(
    "/sandbox/quotes/{symbol:path}",
    response_model=QuoteRead,
    dependencies=relaxed,
    summary="Sandbox only: set a quote (orders that now cross it fill, up to its size)",
    responses={404: {"description": "Not in sandbox mode, or unknown symbol"}},
)
async def sandbox_quote(
    body: SandboxQuoteSet, user: CurrentUser, b: BrokerDep, symbol: str = Path(max_length=32)
) -> QuoteRead:
    sandbox = _sandbox(b)
    try:
        await sandbox.set_quote(
            symbol=symbol.upper(),
            bid=body.bid,
            ask=body.ask,
            bid_size=body.bid_size,
            ask_size=body.ask_size,
            previous_close=body.previous_close,
        )
    except BrokerNotFound as exc:
        raise NotFound(exc.message, code="ASSET_NOT_FOUND") from exc
    except BrokerRejected as exc:
        raise Unprocessable(exc.message, code="INVALID_QUOTE") from exc
    return await service.quote(broker=b, symbol=symbol)


@router.put(
    "/sandbox/clock",
    response_model=SandboxClockSet,
    dependencies=relaxed,
    summary="Sandbox only: pin the equity market open or closed, or follow NYSE's calendar",
    responses={404: {"description": "Not in sandbox mode"}},
)
async def sandbox_clock(body: SandboxClockSet, user: CurrentUser, b: BrokerDep) -> SandboxClockSet:
    await _sandbox(b).set_market_clock(None if body.market == "calendar" else body.market)
    return body


# --- admin ----------------------------------------------------------------------------------------


@admin_router.post("/reconcile", response_model=ReconcileReport)
async def run_reconcile(
    admin: AdminUser,
    request: Request,
    b: BrokerDep,
    grace_seconds: float = Query(0, ge=0, le=86_400),
) -> ReconcileReport:
    settings = request.app.state.settings
    try:
        return await reconcile(
            maker=request.app.state.sessionmaker,
            broker=b,
            grace_seconds=grace_seconds,
            pending_timeout_seconds=settings.brokerage_pending_timeout_seconds,
        )
    except BrokerError as exc:
        raise Unprocessable(exc.message, code="BROKER_ERROR") from exc


@admin_router.get("/alerts")
async def alerts(admin: AdminUser, session: SessionDep) -> dict[str, Any]:
    rows = await repo.alerts(session, limit=200)
    return {
        "items": [
            {
                "id": a.id,
                "kind": a.kind,
                "user_id": str(a.user_id) if a.user_id else None,
                "subject": a.subject,
                "details": a.details,
                "created_at": a.created_at.isoformat(),
            }
            for a in rows
        ]
    }


def routers() -> list[APIRouter]:
    from pull.brokerage.providers.alpaca_routes import router as alpaca_router

    return [router, admin_router, alpaca_router]
