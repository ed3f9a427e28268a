"""Alpaca's Broker API through alpaca-py (its official SDK).

The SDK's REST transport (HTTP Basic auth, 429 retries, `APIError`) carries every call; it runs
with `raw_data=True` and request bodies are built here with decimal strings, because the SDK's
typed request models turn amounts into floats. Accounts are created with its typed
`CreateAccountRequest`. The trade events stream is read with httpx: the SDK only knows the
removed `/v1/events/trades` and blocks a thread per stream. Market data (latest quotes,
snapshots) uses the SDK's historical data clients with Basic auth. Synchronous SDK calls run
in a thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from alpaca.broker.client import BrokerClient
from alpaca.broker.models import Agreement, Contact, Disclosures, Identity
from alpaca.broker.requests import CreateAccountRequest
from alpaca.common.exceptions import APIError
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import (
    CryptoLatestQuoteRequest,
    CryptoSnapshotRequest,
    StockLatestQuoteRequest,
    StockSnapshotRequest,
)

from pull.brokerage import hours
from pull.brokerage.money import fmt
from pull.brokerage.providers import wire
from pull.brokerage.providers.base import (
    Asset,
    BrokerAccount,
    BrokerError,
    BrokerNotFound,
    BrokerOrder,
    BrokerPosition,
    BrokerRejected,
    BrokerUnavailable,
    Heartbeat,
    Journal,
    OrderRequest,
    Person,
    Quote,
    ReplaceRequest,
    Snapshot,
    TradeEvent,
)

T = TypeVar("T")


def _error(exc: Exception) -> BrokerError:
    if isinstance(exc, APIError):
        status = exc.status_code or 500
        try:
            code: int | None = int(exc.code)
            message = str(exc.message)
        except (ValueError, KeyError, TypeError):
            code, message = None, str(exc)
        if status == 404:
            return BrokerNotFound(message, status=status, code=code)
        if status >= 500 or status == 429:
            return BrokerUnavailable(message, status=status, code=code)
        return BrokerRejected(message, status=status, code=code)
    return BrokerUnavailable(f"{type(exc).__name__}: {exc}", status=503)


class AlpacaBroker:
    is_sandbox = False

    def __init__(
        self,
        *,
        key: str,
        secret: str,
        base_url: str,
        data_url: str,
        firm_account_id: str,
        timeout: float = 10.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._firm = firm_account_id
        self._auth = (key, secret)
        self._timeout = timeout
        self._client = BrokerClient(
            key, secret, sandbox=False, raw_data=True, url_override=self._base
        )
        self._stocks = StockHistoricalDataClient(
            key, secret, use_basic_auth=True, raw_data=True, url_override=data_url.rstrip("/")
        )
        self._crypto = CryptoHistoricalDataClient(
            key, secret, raw_data=True, url_override=data_url.rstrip("/")
        )
        self._crypto._use_basic_auth = True

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except (APIError, OSError, ValueError) as exc:
            raise _error(exc) from exc
        except Exception as exc:  # requests' ConnectionError/Timeout are not OSError
            raise _error(exc) from exc

    async def firm_account_id(self) -> str:
        return self._firm

    async def create_account(self, *, person: Person) -> BrokerAccount:
        now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        request = CreateAccountRequest(
            contact=Contact(
                email_address=person.email,
                phone_number=person.phone,
                street_address=[person.street],
                city=person.city,
                state=person.state,
                postal_code=person.postal_code,
                country="USA" if person.country == "US" else person.country,
            ),
            identity=Identity(
                given_name=person.given_name,
                family_name=person.family_name,
                date_of_birth=person.date_of_birth,
                country_of_tax_residence="USA" if person.country == "US" else person.country,
                funding_source=["employment_income"],
            ),
            disclosures=Disclosures(
                is_control_person=False,
                is_affiliated_exchange_or_finra=False,
                is_politically_exposed=False,
                immediate_family_exposed=False,
            ),
            agreements=[
                Agreement(agreement=kind, signed_at=now, ip_address=person.ip_address)
                for kind in ("customer_agreement", "account_agreement")
            ],
        )
        body: Any = await self._call(lambda: self._client.create_account(request))
        if hasattr(body, "model_dump"):  # the SDK parses accounts even with raw_data
            body = body.model_dump(mode="json")
        return wire.parse_account(body)

    async def get_account(self, *, account_id: str) -> BrokerAccount:
        body: Any = await self._call(
            lambda: self._client.get(f"/trading/accounts/{account_id}/account")
        )
        return wire.parse_account(body)

    async def create_journal(
        self, *, from_account: str, to_account: str, amount: Decimal, description: str
    ) -> Journal:
        payload = {
            "entry_type": "JNLC",
            "from_account": from_account,
            "to_account": to_account,
            "amount": fmt(amount),
            "description": description,
        }
        body: Any = await self._call(lambda: self._client.post("/journals", payload))
        return wire.parse_journal(body)

    async def find_journal(
        self, *, from_account: str, to_account: str, description: str, since: dt.date
    ) -> Journal | None:
        params = {
            "entry_type": "JNLC",
            "from_account": from_account,
            "to_account": to_account,
            "after": (since - dt.timedelta(days=1)).isoformat(),
        }
        body: Any = await self._call(lambda: self._client.get("/journals", params))
        for item in body if isinstance(body, list) else []:
            journal = wire.parse_journal(item)
            if journal.description == description and journal.status not in (
                "rejected",
                "canceled",
                "refused",
            ):
                return journal
        return None

    async def submit_order(self, *, account_id: str, request: OrderRequest) -> BrokerOrder:
        payload: dict[str, Any] = {
            "symbol": request.symbol,
            "side": request.side,
            "type": request.type,
            "time_in_force": request.time_in_force,
            "client_order_id": request.client_order_id,
        }
        for name in ("qty", "notional", "limit_price", "stop_price"):
            value = getattr(request, name)
            if value is not None:
                payload[name] = fmt(value)
        body: Any = await self._call(
            lambda: self._client.post(f"/trading/accounts/{account_id}/orders", payload)
        )
        return wire.parse_order(body, account_id=account_id)

    async def get_order(self, *, account_id: str, order_id: str) -> BrokerOrder:
        body: Any = await self._call(
            lambda: self._client.get(f"/trading/accounts/{account_id}/orders/{order_id}")
        )
        return wire.parse_order(body, account_id=account_id)

    async def get_order_by_client_id(
        self, *, account_id: str, client_order_id: str
    ) -> BrokerOrder | None:
        try:
            body: Any = await self._call(
                lambda: self._client.get(
                    f"/trading/accounts/{account_id}/orders:by_client_order_id",
                    {"client_order_id": client_order_id},
                )
            )
        except BrokerNotFound:
            return None
        return wire.parse_order(body, account_id=account_id)

    async def list_orders(
        self, *, account_id: str, after: dt.datetime | None = None, limit: int = 500
    ) -> list[BrokerOrder]:
        params: dict[str, Any] = {"status": "all", "limit": limit, "direction": "desc"}
        if after is not None:
            params["after"] = wire.ts(after)
        body: Any = await self._call(
            lambda: self._client.get(f"/trading/accounts/{account_id}/orders", params)
        )
        return [wire.parse_order(item, account_id=account_id) for item in body or []]

    async def replace_order(
        self, *, account_id: str, order_id: str, request: ReplaceRequest
    ) -> BrokerOrder:
        payload: dict[str, Any] = {"client_order_id": request.client_order_id}
        for name in ("qty", "limit_price", "stop_price"):
            value = getattr(request, name)
            if value is not None:
                payload[name] = fmt(value)
        if request.time_in_force:
            payload["time_in_force"] = request.time_in_force
        body: Any = await self._call(
            lambda: self._client.patch(f"/trading/accounts/{account_id}/orders/{order_id}", payload)
        )
        return wire.parse_order(body, account_id=account_id)

    async def cancel_order(self, *, account_id: str, order_id: str) -> None:
        await self._call(
            lambda: self._client.delete(f"/trading/accounts/{account_id}/orders/{order_id}")
        )

    async def list_positions(self, *, account_id: str) -> list[BrokerPosition]:
        body: Any = await self._call(
            lambda: self._client.get(f"/trading/accounts/{account_id}/positions")
        )
        return [wire.parse_position(item) for item in body or []]

    async def list_assets(self, *, query: str | None = None) -> list[Asset]:
        body: Any = await self._call(lambda: self._client.get("/assets", {"status": "active"}))
        assets = [wire.parse_asset(item) for item in body or []]
        q = (query or "").strip().lower()
        return [a for a in assets if not q or q in a.symbol.lower() or q in a.name.lower()]

    async def get_asset(self, *, symbol: str) -> Asset | None:
        try:
            body: Any = await self._call(lambda: self._client.get(f"/assets/{symbol}"))
        except BrokerNotFound:
            return None
        return wire.parse_asset(body)

    async def get_quote(self, *, symbol: str) -> Quote:
        if "/" in symbol:
            raw: Any = await self._call(
                lambda: self._crypto.get_crypto_latest_quote(
                    CryptoLatestQuoteRequest(symbol_or_symbols=symbol)
                )
            )
            market_open = True
        else:
            raw = await self._call(
                lambda: self._stocks.get_stock_latest_quote(
                    StockLatestQuoteRequest(symbol_or_symbols=symbol)
                )
            )
            market_open = hours.equities_open(dt.datetime.now(dt.UTC))
        if not raw or symbol not in raw:
            raise BrokerNotFound(f"no quote for {symbol}", status=404)
        values = {k: str(v) if isinstance(v, (int, float)) else v for k, v in raw[symbol].items()}
        return wire.parse_quote(symbol, values, market_open=market_open)

    async def get_snapshots(self, *, symbols: Sequence[str]) -> dict[str, Snapshot]:
        """Market data snapshots, one call for the stocks (`GET /v2/stocks/snapshots`) and one
        for the crypto pairs (`GET /v1beta3/crypto/us/snapshots`); the previous daily bar's
        close is what PULL takes of them (the base of the day change)."""
        stocks = sorted({s for s in symbols if "/" not in s})
        pairs = sorted({s for s in symbols if "/" in s})
        raw: dict[str, Any] = {}
        if stocks:
            found: Any = await self._call(
                lambda: self._stocks.get_stock_snapshot(
                    StockSnapshotRequest(symbol_or_symbols=stocks)
                )
            )
            raw.update(found or {})
        if pairs:
            found = await self._call(
                lambda: self._crypto.get_crypto_snapshot(
                    CryptoSnapshotRequest(symbol_or_symbols=pairs)
                )
            )
            raw.update(found or {})
        return {
            symbol: wire.parse_snapshot(symbol, body)
            for symbol, body in raw.items()
            if isinstance(body, dict)
        }

    async def trade_events(
        self, *, since_id: str | None, since: dt.datetime | None = None
    ) -> AsyncIterator[TradeEvent | Heartbeat]:
        """`GET /v2/events/trades` as Server-Sent Events; comment lines become heartbeats."""
        params: dict[str, str] = {}
        if since_id:
            params["since_id"] = since_id
        elif since is not None:
            params["since"] = wire.ts(since) or ""
        timeout = httpx.Timeout(self._timeout, read=max(self._timeout, 60.0))
        try:
            async with (
                httpx.AsyncClient(auth=self._auth, timeout=timeout) as http,
                http.stream(
                    "GET",
                    f"{self._base}/v2/events/trades",
                    params=params,
                    headers={"Accept": "text/event-stream", "Cache-Control": "no-cache"},
                ) as response,
            ):
                if response.status_code >= 400:
                    text = (await response.aread()).decode(errors="replace")
                    status = response.status_code
                    cls = BrokerUnavailable if status >= 500 or status == 429 else BrokerRejected
                    raise cls(text[:500], status=status)
                data: list[str] = []
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        note = line[1:].strip()
                        beat = Heartbeat(notes=[note])
                        if "dropped" in note:
                            digits = "".join(ch for ch in note if ch.isdigit())
                            beat.dropped = int(digits or 1)
                        yield beat
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
                    elif line == "" and data:
                        body = json.loads("\n".join(data))
                        data = []
                        yield wire.parse_event(body)
        except httpx.HTTPError as exc:
            raise BrokerUnavailable(f"event stream: {type(exc).__name__}", status=503) from exc
