"""The sandbox broker served as Alpaca's Broker API (HTTP Basic, Alpaca's JSON and errors)
under `/sandbox/alpaca`, so any Alpaca client - alpaca-py included - can be pointed at it:
`BrokerClient(key, secret, url_override="http://127.0.0.1:3001/sandbox/alpaca")`.
Trade events stream as Server-Sent Events at `/sandbox/alpaca/v2/events/trades` (`since_id`,
`since`, `:heartbeat` comments). 404 when a real broker is configured."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from pull.brokerage.money import to_decimal
from pull.brokerage.providers import wire
from pull.brokerage.providers.base import (
    BrokerError,
    BrokerNotFound,
    OrderRequest,
    Person,
    ReplaceRequest,
    TradeEvent,
)
from pull.brokerage.providers.factory import make_broker
from pull.brokerage.providers.sandbox import SandboxBroker
from pull.brokerage.providers.sandbox_engine import catalog

router = APIRouter(prefix="/sandbox/alpaca", include_in_schema=False)
HEARTBEAT_SECONDS = 5.0


class _Denied(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(wire.error_json(code, message), status_code=status)


def _broker(request: Request) -> SandboxBroker:
    settings = request.app.state.settings
    b = make_broker(settings, request.app.state.sessionmaker)
    if not isinstance(b, SandboxBroker):
        raise _Denied(404, 40410000, "not found")
    raw = request.headers.get("authorization", "")
    if not raw.lower().startswith("basic "):
        raise _Denied(401, 40110000, "request is not authorized")
    try:
        user, _, password = base64.b64decode(raw[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _Denied(401, 40110000, "request is not authorized") from exc
    ok = hmac.compare_digest(user, settings.brokerage_sandbox_api_key) and hmac.compare_digest(
        password, settings.brokerage_sandbox_api_secret
    )
    if not ok:
        raise _Denied(401, 40110000, "request is not authorized")
    return b


async def _body(request: Request) -> dict[str, Any]:
    try:
        value = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise _Denied(400, 40010000, "request body format is invalid") from exc
    if not isinstance(value, dict):
        raise _Denied(400, 40010000, "request body format is invalid")
    return value


def _dec(body: dict[str, Any], name: str) -> Decimal | None:
    raw = body.get(name)
    if raw is None:
        return None
    value = to_decimal(raw)
    if value is None:
        raise _Denied(422, 40010001, f"{name} is invalid")
    return value


async def _run(request: Request, action: Any) -> Response:
    try:
        b = _broker(request)
        result = await action(b)
    except _Denied as exc:
        return _error(exc.status, exc.code, exc.message)
    except BrokerError as exc:
        return _error(exc.status, exc.code or exc.status * 100000, exc.message)
    if isinstance(result, Response):
        return result
    return JSONResponse(result)


@router.post("/v1/accounts")
async def create_account(request: Request) -> Response:
    async def act(b: SandboxBroker) -> Any:
        body = await _body(request)
        contact, identity = body.get("contact") or {}, body.get("identity") or {}
        agreements = body.get("agreements") or []
        if not contact.get("email_address") or not identity.get("given_name") or not agreements:
            raise _Denied(422, 40010001, "contact, identity and agreements are required")
        street = contact.get("street_address") or [""]
        account = await b.create_account(
            person=Person(
                reference=str(contact.get("email_address")),
                email=str(contact.get("email_address")),
                given_name=str(identity.get("given_name")),
                family_name=str(identity.get("family_name") or ""),
                date_of_birth=str(identity.get("date_of_birth") or ""),
                phone=str(contact.get("phone_number") or ""),
                street=str(street[0] if isinstance(street, list) and street else street),
                city=str(contact.get("city") or ""),
                state=str(contact.get("state") or ""),
                postal_code=str(contact.get("postal_code") or ""),
                country=str(contact.get("country") or "USA"),
                tax_id_last4=None,
                ip_address=str(agreements[0].get("ip_address") or ""),
            )
        )
        return wire.account_json(account, created_at=dt.datetime.now(dt.UTC))

    return await _run(request, act)


@router.get("/v1/trading/accounts/{account_id}/account")
async def trade_account(account_id: str, request: Request) -> Response:
    async def act(b: SandboxBroker) -> Any:
        return wire.trade_account_json(await b.get_account(account_id=account_id))

    return await _run(request, act)


@router.post("/v1/journals")
async def create_journal(request: Request) -> Response:
    async def act(b: SandboxBroker) -> Any:
        body = await _body(request)
        if body.get("entry_type") != "JNLC":
            raise _Denied(422, 40010001, "only JNLC journals are supported by the sandbox")
        amount = _dec(body, "amount")
        if amount is None:
            raise _Denied(422, 40010001, "amount is required")
        journal = await b.create_journal(
            from_account=str(body.get("from_account")),
            to_account=str(body.get("to_account")),
            amount=amount,
            description=str(body.get("description") or ""),
        )
        return wire.journal_json(journal)

    return await _run(request, act)


@router.get("/v1/journals")
async def list_journals(request: Request) -> Response:
    """Alpaca's journal list, with the filters PULL uses (entry_type JNLC, from_account,
    to_account, after = a date); each journal carries its description."""

    async def act(b: SandboxBroker) -> Any:
        q = request.query_params
        try:
            after = dt.date.fromisoformat(q.get("after") or "2000-01-01")
        except ValueError as exc:
            raise _Denied(422, 40010001, "after must be a date") from exc
        found = await b.list_journals(
            from_account=q.get("from_account") or "",
            to_account=q.get("to_account") or "",
            since=after,
        )
        return [wire.journal_json(j) for j in found]

    return await _run(request, act)


@router.post("/v1/trading/accounts/{account_id}/orders")
async def submit_order(account_id: str, request: Request) -> Response:
    async def act(b: SandboxBroker) -> Any:
        body = await _body(request)
        for name in ("symbol", "side", "type", "time_in_force"):
            if not isinstance(body.get(name), str):
                raise _Denied(422, 40010001, f"{name} is required")
        order = await b.submit_order(
            account_id=account_id,
            request=OrderRequest(
                symbol=body["symbol"],
                side=body["side"],
                type=body["type"],
                time_in_force=body["time_in_force"],
                client_order_id=str(body.get("client_order_id") or ""),
                qty=_dec(body, "qty"),
                notional=_dec(body, "notional"),
                limit_price=_dec(body, "limit_price"),
                stop_price=_dec(body, "stop_price"),
            ),
        )
        return wire.order_json(order)

    return await _run(request, act)


@router.get("/v1/trading/accounts/{account_id}/orders")
async def list_orders(account_id: str, request: Request) -> Response:
    async def act(b: SandboxBroker) -> Any:
        after = request.query_params.get("after")
        limit = min(int(request.query_params.get("limit") or 50), 500)
        found = await b.list_orders(
            account_id=account_id, after=wire.parse_ts(after) if after else None, limit=limit
        )
        return [wire.order_json(o) for o in found]

    return await _run(request, act)


@router.get("/v1/trading/accounts/{account_id}/orders:by_client_order_id")
async def order_by_client_id(account_id: str, request: Request) -> Response:
    async def act(b: SandboxBroker) -> Any:
        found = await b.get_order_by_client_id(
            account_id=account_id,
            client_order_id=request.query_params.get("client_order_id", ""),
        )
        if found is None:
            raise BrokerNotFound("order not found", status=404, code=40410000)
        return wire.order_json(found)

    return await _run(request, act)


@router.get("/v1/trading/accounts/{account_id}/orders/{order_id}")
async def get_order(account_id: str, order_id: str, request: Request) -> Response:
    async def act(b: SandboxBroker) -> Any:
        return wire.order_json(await b.get_order(account_id=account_id, order_id=order_id))

    return await _run(request, act)


@router.patch("/v1/trading/accounts/{account_id}/orders/{order_id}")
async def replace_order(account_id: str, order_id: str, request: Request) -> Response:
    async def act(b: SandboxBroker) -> Any:
        body = await _body(request)
        new = await b.replace_order(
            account_id=account_id,
            order_id=order_id,
            request=ReplaceRequest(
                client_order_id=str(body.get("client_order_id") or ""),
                qty=_dec(body, "qty"),
                limit_price=_dec(body, "limit_price"),
                stop_price=_dec(body, "stop_price"),
                time_in_force=body.get("time_in_force"),
            ),
        )
        return wire.order_json(new)

    return await _run(request, act)


@router.delete("/v1/trading/accounts/{account_id}/orders/{order_id}")
async def cancel_order(account_id: str, order_id: str, request: Request) -> Response:
    async def act(b: SandboxBroker) -> Any:
        await b.cancel_order(account_id=account_id, order_id=order_id)
        return Response(status_code=204)

    return await _run(request, act)


@router.get("/v1/trading/accounts/{account_id}/positions")
async def positions(account_id: str, request: Request) -> Response:
    async def act(b: SandboxBroker) -> Any:
        return [wire.position_json(p) for p in await b.list_positions(account_id=account_id)]

    return await _run(request, act)


@router.get("/v1/assets")
async def assets(request: Request) -> Response:
    async def act(b: SandboxBroker) -> Any:
        return [wire.asset_json(a) for a in await b.list_assets()]

    return await _run(request, act)


@router.get("/v1/assets/{symbol:path}")
async def asset(symbol: str, request: Request) -> Response:
    async def act(b: SandboxBroker) -> Any:
        found = await b.get_asset(symbol=symbol)
        if found is None:
            raise BrokerNotFound(f"asset not found for {symbol}", status=404, code=40410000)
        return wire.asset_json(found)

    return await _run(request, act)


async def _latest_quotes(request: Request, b: SandboxBroker) -> dict[str, Any]:
    symbols = [s for s in request.query_params.get("symbols", "").split(",") if s]
    quotes: dict[str, Any] = {}
    for symbol in symbols:
        if symbol in catalog():
            q = await b.get_quote(symbol=symbol)
            quotes[symbol] = {
                "ap": float(q.ask),
                "as": float(q.ask_size),
                "bp": float(q.bid),
                "bs": float(q.bid_size),
                "t": wire.ts(q.at),
                "c": ["R"],
                "x": "V",
                "z": "C",
            }
    return {"quotes": quotes}


@router.get("/v2/stocks/quotes/latest")
async def stock_quotes(request: Request) -> Response:
    return await _run(request, lambda b: _latest_quotes(request, b))


@router.get("/v1beta3/crypto/us/latest/quotes")
async def crypto_quotes(request: Request) -> Response:
    return await _run(request, lambda b: _latest_quotes(request, b))


async def _snapshots(request: Request, b: SandboxBroker) -> dict[str, Any]:
    symbols = [s for s in request.query_params.get("symbols", "").split(",") if s]
    out: dict[str, Any] = {}
    for symbol, snap in (await b.get_snapshots(symbols=symbols)).items():
        assert snap.previous_close is not None and snap.previous_close_at is not None
        q = await b.get_quote(symbol=symbol)
        out[symbol] = wire.snapshot_json(q, snap.previous_close, snap.previous_close_at)
    return out


@router.get("/v2/stocks/snapshots")
async def stock_snapshots(request: Request) -> Response:
    """Alpaca's stock snapshots: keyed by symbol at the top level."""
    return await _run(request, lambda b: _snapshots(request, b))


@router.get("/v1beta3/crypto/us/snapshots")
async def crypto_snapshots(request: Request) -> Response:
    """Alpaca's crypto snapshots: under `snapshots`."""

    async def act(b: SandboxBroker) -> Any:
        return {"snapshots": await _snapshots(request, b)}

    return await _run(request, act)


@router.get("/v2/events/trades")
async def trade_events(request: Request) -> Response:
    """Server-Sent Events: `data: {event}` per trade event, `:heartbeat` when idle."""

    async def act(b: SandboxBroker) -> Any:
        since_raw = request.query_params.get("since")
        events = await b.open_stream(
            since_id=request.query_params.get("since_id") or None,
            since=wire.parse_ts(since_raw) if since_raw else None,
        )

        async def stream() -> AsyncIterator[bytes]:
            yield b":heartbeat\n\n"
            quiet_since = time.monotonic()
            async for item in events:
                if await request.is_disconnected():
                    return
                if isinstance(item, TradeEvent):
                    body = json.dumps(wire.event_json(item), separators=(",", ":"))
                    yield f"data: {body}\n\n".encode()
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                    quiet_since = time.monotonic()
                    yield b":heartbeat\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "Connection": "keep-alive"},
        )

    return await _run(request, act)
