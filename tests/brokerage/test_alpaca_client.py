"""The real client (alpaca-py) against a local server speaking Alpaca's Broker API: PULL's
sandbox served as Alpaca's wire shapes under /sandbox/alpaca on a real port."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from alpaca.trading.models import Order as SdkOrder
from fastapi import FastAPI

from pull import devstack
from pull.brokerage.providers.alpaca import AlpacaBroker
from pull.brokerage.providers.base import (
    BrokerNotFound,
    BrokerRejected,
    Heartbeat,
    OrderRequest,
    Person,
    ReplaceRequest,
    TradeEvent,
)
from pull.config import Settings
from tests.funding.conftest import serve

PERSON = Person(
    reference="u-1",
    email="ada@example.com",
    given_name="Ada",
    family_name="Lovelace",
    date_of_birth="1990-12-10",
    phone="+15555550100",
    street="20 W 34th St",
    city="New York",
    state="NY",
    postal_code="10001",
    country="US",
    tax_id_last4="1234",
    ip_address="127.0.0.1",
)


@pytest.fixture
async def base_url(app: FastAPI) -> AsyncIterator[str]:
    async with serve(app, devstack.free_port()) as url:
        yield url + "/sandbox/alpaca"


@pytest.fixture
async def alpaca(base_url: str, settings: Settings) -> AlpacaBroker:
    # the firm account: the sandbox creates it on first use (Alpaca: the partner's sweep account)
    from pull.brokerage.providers.sandbox import SandboxBroker

    firm = await SandboxBroker(settings_maker(settings)).firm_account_id()
    return AlpacaBroker(
        key=settings.brokerage_sandbox_api_key,
        secret=settings.brokerage_sandbox_api_secret,
        base_url=base_url,
        data_url=base_url,
        firm_account_id=firm,
    )


_makers: dict[str, object] = {}


def settings_maker(settings: Settings):  # type: ignore[no-untyped-def]
    from pull.kit.db import make_engine, make_sessionmaker

    if settings.database_url not in _makers:
        _makers[settings.database_url] = make_sessionmaker(make_engine(settings.database_url))
    return _makers[settings.database_url]


async def test_account_journal_orders_positions_through_alpaca_py(
    alpaca: AlpacaBroker, market_open: None
) -> None:
    account = await alpaca.create_account(person=PERSON)
    assert account.status == "ACTIVE" and account.account_number
    firm = await alpaca.firm_account_id()
    journal = await alpaca.create_journal(
        from_account=firm, to_account=account.id, amount=Decimal("500.00"), description="t"
    )
    assert journal.status == "executed" and journal.amount == Decimal("500.00")
    assert (await alpaca.get_account(account_id=account.id)).cash == Decimal("500.00")
    # GET /v1/journals: a journal found again by its description (PULL's key), one way only
    today = dt.datetime.now(dt.UTC).date()
    found = await alpaca.find_journal(
        from_account=firm, to_account=account.id, description="t", since=today
    )
    assert found is not None and found.id == journal.id and found.description == "t"
    assert not await alpaca.find_journal(
        from_account=firm, to_account=account.id, description="other", since=today
    )
    assert not await alpaca.find_journal(
        from_account=account.id, to_account=firm, description="t", since=today
    )

    quote = await alpaca.get_quote(symbol="AAPL")
    assert quote.ask > quote.bid > 0
    crypto = await alpaca.get_quote(symbol="BTC/USD")
    assert crypto.market_open and crypto.ask > 0

    coid = uuid.uuid4().hex
    order = await alpaca.submit_order(
        account_id=account.id,
        request=OrderRequest(
            symbol="AAPL",
            side="buy",
            type="market",
            time_in_force="day",
            client_order_id=coid,
            qty=Decimal("0.25"),
        ),
    )
    assert order.client_order_id == coid
    got = await alpaca.get_order_by_client_id(account_id=account.id, client_order_id=coid)
    assert got is not None and got.status == "filled" and got.filled_qty == Decimal("0.25")
    assert got.filled_avg_price == quote.ask
    assert (
        await alpaca.get_order_by_client_id(account_id=account.id, client_order_id="nope") is None
    )

    resting = await alpaca.submit_order(
        account_id=account.id,
        request=OrderRequest(
            symbol="AAPL",
            side="buy",
            type="limit",
            time_in_force="gtc",
            client_order_id=uuid.uuid4().hex,
            qty=Decimal(1),
            limit_price=Decimal("100"),
        ),
    )
    assert resting.status == "new"
    replaced = await alpaca.replace_order(
        account_id=account.id,
        order_id=resting.id,
        request=ReplaceRequest(client_order_id=uuid.uuid4().hex, limit_price=Decimal("101")),
    )
    assert replaced.replaces == resting.id and replaced.limit_price == Decimal("101")
    old = await alpaca.get_order(account_id=account.id, order_id=resting.id)
    assert old.status == "replaced" and old.replaced_by == replaced.id
    await alpaca.cancel_order(account_id=account.id, order_id=replaced.id)
    assert (
        await alpaca.get_order(account_id=account.id, order_id=replaced.id)
    ).status == "canceled"
    with pytest.raises(BrokerRejected) as not_cancelable:
        await alpaca.cancel_order(account_id=account.id, order_id=order.id)
    assert not_cancelable.value.status == 422

    with pytest.raises(BrokerRejected) as poor:
        await alpaca.submit_order(
            account_id=account.id,
            request=OrderRequest(
                symbol="AAPL",
                side="buy",
                type="market",
                time_in_force="day",
                client_order_id=uuid.uuid4().hex,
                qty=Decimal(100),
            ),
        )
    assert poor.value.status == 403 and "buying power" in poor.value.message

    positions = await alpaca.list_positions(account_id=account.id)
    assert [(p.symbol, p.qty) for p in positions] == [("AAPL", Decimal("0.25"))]
    listed = await alpaca.list_orders(account_id=account.id)
    assert {o.id for o in listed} >= {order.id, resting.id, replaced.id}
    assets = await alpaca.list_assets(query="apple")
    assert [a.symbol for a in assets] == ["AAPL"]
    assert (await alpaca.get_asset(symbol="BTC/USD")) is not None
    assert await alpaca.get_asset(symbol="NOPE") is None
    with pytest.raises(BrokerNotFound):
        await alpaca.get_order(account_id=account.id, order_id=str(uuid.uuid4()))


async def test_snapshots_previous_close_through_alpaca_py(
    alpaca: AlpacaBroker, settings: Settings
) -> None:
    """`GET /v2/stocks/snapshots` (symbols at the top level) and `/v1beta3/crypto/us/snapshots`
    (under `snapshots`) through the SDK's data clients: the previous daily bar's close."""
    from pull.brokerage.providers.sandbox import SandboxBroker

    sandbox = SandboxBroker(settings_maker(settings))
    await sandbox.set_quote(
        symbol="AAPL", bid=Decimal("210.00"), ask=Decimal("212.00"), previous_close=Decimal("205.5")
    )
    snaps = await alpaca.get_snapshots(symbols=["AAPL", "BTC/USD", "NOPE"])
    assert set(snaps) == {"AAPL", "BTC/USD"}
    assert snaps["AAPL"].previous_close == Decimal("205.5")
    at = snaps["AAPL"].previous_close_at
    assert at is not None and at.date() == dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    btc = snaps["BTC/USD"].previous_close
    assert btc is not None and btc > 0  # the reference price: nobody set it
    assert await alpaca.get_snapshots(symbols=[]) == {}


async def test_wire_json_parses_as_the_sdks_own_order_model(
    base_url: str, settings: Settings, alpaca: AlpacaBroker, market_open: None
) -> None:
    account = await alpaca.create_account(person=PERSON)
    auth = base64.b64encode(
        f"{settings.brokerage_sandbox_api_key}:{settings.brokerage_sandbox_api_secret}".encode()
    ).decode()
    async with httpx.AsyncClient(headers={"Authorization": f"Basic {auth}"}) as http:
        r = await http.post(
            f"{base_url}/v1/trading/accounts/{account.id}/orders",
            json={
                "symbol": "BTC/USD",
                "side": "buy",
                "type": "market",
                "time_in_force": "gtc",
                "notional": "10",
            },
        )
        assert r.status_code == 403, r.text  # no cash: Alpaca's error shape
        assert r.json()["code"] == 40310000
        r = await http.get(f"{base_url}/v1/assets/AAPL")
        assert r.json()["fractionable"] is True
        r = await http.get(f"{base_url}/v1/trading/accounts/{account.id}/orders")
        assert r.status_code == 200 and r.json() == []
        bad = await http.get(f"{base_url}/v1/assets", headers={"Authorization": "Basic eDp5"})
        assert bad.status_code == 401 and bad.json()["code"] == 40110000
    firm = await alpaca.firm_account_id()
    await alpaca.create_journal(
        from_account=firm, to_account=account.id, amount=Decimal(50), description="t"
    )
    placed = await alpaca.submit_order(
        account_id=account.id,
        request=OrderRequest(
            symbol="ETH/USD",
            side="buy",
            type="market",
            time_in_force="gtc",
            client_order_id=uuid.uuid4().hex,
            notional=Decimal("20.00"),
        ),
    )
    async with httpx.AsyncClient(headers={"Authorization": f"Basic {auth}"}) as http:
        r = await http.get(f"{base_url}/v1/trading/accounts/{account.id}/orders/{placed.id}")
    sdk = SdkOrder(**r.json())
    assert str(sdk.id) == placed.id and sdk.status.value == "filled"


async def test_trade_events_stream_as_sse_and_resume_after_since_id(
    alpaca: AlpacaBroker, market_open: None
) -> None:
    account = await alpaca.create_account(person=PERSON)
    firm = await alpaca.firm_account_id()
    await alpaca.create_journal(
        from_account=firm, to_account=account.id, amount=Decimal(1000), description="t"
    )

    async def collect(since_id: str | None, n: int) -> list[TradeEvent]:
        out: list[TradeEvent] = []
        async for item in alpaca.trade_events(
            since_id=since_id,
            since=None
            if since_id
            else __import__("datetime").datetime(2020, 1, 1, tzinfo=__import__("datetime").UTC),
        ):
            if isinstance(item, Heartbeat):
                if len(out) >= n:
                    break
                continue
            out.append(item)
            if len(out) >= n:
                break
        return out

    for _ in range(3):
        await alpaca.submit_order(
            account_id=account.id,
            request=OrderRequest(
                symbol="SOL/USD",
                side="buy",
                type="market",
                time_in_force="gtc",
                client_order_id=uuid.uuid4().hex,
                qty=Decimal("0.1"),
            ),
        )
    first = await asyncio.wait_for(collect(None, 6), 20)
    assert [e.event for e in first] == ["new", "fill"] * 3
    fill = first[1]
    assert fill.execution_id and fill.qty == Decimal("0.1") and fill.price is not None
    assert fill.order.filled_qty == Decimal("0.1") and fill.position_qty == Decimal("0.1")
    resumed = await asyncio.wait_for(collect(first[1].event_id, 4), 20)
    assert [e.event_id for e in resumed] == [e.event_id for e in first[2:]]
    with pytest.raises(BrokerRejected):
        await collect("01BOGUSBOGUSBOGUSBOGUSBOGU", 1)
