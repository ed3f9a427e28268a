"""Kalshi's official Python SDK (kalshi-python 2.1.4 from PyPI), unchanged, against PULL.

The SDK is synchronous (urllib3), so it talks to a real `pull api` process. Its keys are
registered through our own API-key endpoint; it signs every request itself (RSA-PSS).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import kalshi_python
import pytest
from kalshi_python import Configuration, KalshiClient
from kalshi_python.models import CreateOrderRequest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.exchange import service
from pull.kit.db import session_scope
from tests.conftest import Services, TestUser, UserFactory, start_api_process, stop_process
from tests.exchange.kalshi_support import (
    PREFIX,
    make_structure,
    new_key,
    private_pem,
    public_pem,
    register_key,
)

Trader = Callable[..., Awaitable[TestUser]]

SERIES, EVENT = "KXSDK", "KXSDK-26"
A, B = "KXSDK-26-A", "KXSDK-26-B"
FUNDS = 100_000


@pytest.fixture(scope="module")
def trade_server(services: Services) -> Iterator[str]:
    """A real API process. Rate limits are off here (the raw-HTTP tests pin the tiers), so
    the sequence of SDK calls below never waits on Kalshi's per-second budget."""
    proc, url = start_api_process(services, RATE_LIMIT_ENABLED="false")
    yield url
    stop_process(proc)


def sdk(url: str, key_id: str | None = None, pem: str | None = None) -> Any:
    config = Configuration(host=f"{url}{PREFIX}")
    if key_id is not None:
        config.api_key_id = key_id
        config.private_key_pem = pem
    return KalshiClient(config)


async def sdk_user(client: httpx.AsyncClient, trader: Trader, url: str) -> tuple[TestUser, Any]:
    user = await trader(cents=FUNDS)
    key = new_key()
    key_id = await register_key(client, user.headers, key)
    return user, sdk(url, key_id, private_pem(key))


async def test_kalshi_sdk_end_to_end(
    trade_server: str,
    client: httpx.AsyncClient,
    trader: Trader,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    assert kalshi_python.__version__.startswith("2.1")
    await make_structure(sessionmaker, SERIES, {EVENT: [A, B]})
    anon = sdk(trade_server)
    _, alice = await sdk_user(client, trader, trade_server)
    bob_user, bob = await sdk_user(client, trader, trade_server)

    # --- market data ---------------------------------------------------------------------
    status = anon.get_exchange_status()
    assert status.exchange_active is True and status.trading_active is True
    markets = anon.get_markets(series_ticker=SERIES, status="open")
    assert sorted(m.ticker for m in markets.markets) == [A, B]
    assert {m.status for m in markets.markets} == {"active"}
    assert markets.cursor == ""
    page = anon.get_markets(series_ticker=SERIES, limit=1)
    assert len(page.markets) == 1 and page.cursor
    rest = anon.get_markets(series_ticker=SERIES, limit=1, cursor=page.cursor)
    assert {page.markets[0].ticker, rest.markets[0].ticker} == {A, B}
    market = anon.get_market(A).market
    assert (market.ticker, market.event_ticker, market.series_ticker) == (A, EVENT, SERIES)
    assert (market.yes_bid, market.yes_ask, market.result) == (0, 100, "")
    events = anon.get_events(series_ticker=SERIES, with_nested_markets=True)
    assert [e.event_ticker for e in events.events] == [EVENT]
    assert sorted(m.ticker for m in events.events[0].markets) == [A, B]
    event = anon.get_event(EVENT)
    assert event.event.series_ticker == SERIES and len(event.markets) == 2
    assert anon.get_series_by_ticker(SERIES).series.title == f"Series {SERIES}"
    assert SERIES in [s.ticker for s in anon.get_series().series]

    # --- a resting limit order -------------------------------------------------------------
    assert alice.get_balance().balance == FUNDS
    placed = alice.create_order(
        ticker=A,
        side="yes",
        action="buy",
        count=10,
        type="limit",
        yes_price=40,
        client_order_id="alice-1",
    ).order
    assert (placed.status, placed.yes_price, placed.no_price) == ("resting", 40, 60)
    assert (placed.count, placed.remaining_count, placed.client_order_id) == (10, 10, "alice-1")
    order_id = placed.order_id
    assert [o.order_id for o in alice.get_orders(ticker=A).orders] == [order_id]
    assert alice.get_order(order_id).order.status == "resting"
    book = anon.get_market_orderbook(A).orderbook
    assert [(lvl.price, lvl.count) for lvl in book.var_true] == [(40, 10)]
    assert book.var_false == []
    assert anon.get_market(A).market.yes_bid == 40
    assert alice.get_balance().balance == FUNDS - 400  # 10 x 40 cents held
    assert alice.get_total_resting_order_value().total_resting_order_value == 400

    # --- crossed by a second user ------------------------------------------------------------
    taken = bob.create_order(
        ticker=A, side="no", action="buy", count=4, type="limit", no_price=60
    ).order
    assert (taken.status, taken.remaining_count) == ("executed", 0)
    fee = 7  # ceil(0.07 x 4 x 0.40 x 0.60 x 100) cents, paid by the taker
    assert bob.get_balance().balance == FUNDS - 4 * 60 - fee
    assert alice.get_balance().balance == FUNDS - 400  # 160 now in escrow, 240 still held
    alice_fills = alice.get_fills(ticker=A).fills
    assert [(f.side, f.action, f.count, f.price, f.is_taker) for f in alice_fills] == [
        ("yes", "buy", 4, 40, False)
    ]
    bob_fills = bob.get_fills().fills
    assert [(f.side, f.action, f.count, f.price, f.is_taker) for f in bob_fills] == [
        ("no", "buy", 4, 60, True)
    ]
    assert alice_fills[0].order_id == order_id
    alice_pos = {p.ticker: p for p in alice.get_positions().positions}
    bob_pos = {p.ticker: p for p in bob.get_positions().positions}
    assert (alice_pos[A].position, alice_pos[A].total_cost, alice_pos[A].fees_paid) == (4, 160, 0)
    assert (bob_pos[A].position, bob_pos[A].total_cost, bob_pos[A].fees_paid) == (-4, 240, fee)
    assert alice_pos[A].event_ticker == EVENT
    assert alice.get_order(order_id).order.remaining_count == 6
    trades = anon.get_trades(ticker=A).trades
    assert [(t.count, t.price, t.taker_side) for t in trades] == [(4, 40, "no")]
    assert anon.get_market(A).market.last_price == 40

    # --- amend, decrease, cancel --------------------------------------------------------------
    amended = alice.amend_order(order_id, yes_price=42, count=12).order
    assert (amended.yes_price, amended.count, amended.remaining_count) == (42, 12, 8)
    assert alice.get_balance().balance == FUNDS - 160 - 8 * 42
    decreased = alice.decrease_order(order_id, reduce_by=3).order
    assert decreased.remaining_count == 5
    assert alice.get_balance().balance == FUNDS - 160 - 5 * 42
    canceled = alice.cancel_order(order_id)
    assert (canceled.order.status, canceled.reduced_by) == ("canceled", 5)
    assert alice.get_balance().balance == FUNDS - 160
    assert [lvl.price for lvl in anon.get_market_orderbook(A).orderbook.var_true] == []

    # --- batches ----------------------------------------------------------------------------
    batch = alice.batch_create_orders(
        orders=[
            CreateOrderRequest(
                ticker=B, side="yes", action="buy", count=2, type="limit", yes_price=p
            )
            for p in (10, 11, 12)
        ]
    )
    created = [r.order for r in batch.responses]
    assert [r.error for r in batch.responses] == [None, None, None]
    assert [(o.yes_price, o.status) for o in created] == [
        (10, "resting"),
        (11, "resting"),
        (12, "resting"),
    ]
    assert alice.get_balance().balance == FUNDS - 160 - 2 * (10 + 11 + 12)
    assert len(alice.get_orders(ticker=B, status="resting").orders) == 3
    cancels = alice.batch_cancel_orders(order_ids=[o.order_id for o in created])
    assert [(r.order_id, r.reduced_by, r.error) for r in cancels.responses] == [
        (o.order_id, 2, None) for o in created
    ]
    assert alice.get_orders(status="resting").orders == []
    assert alice.get_balance().balance == FUNDS - 160

    # --- errors arrive as the SDK's exceptions ---------------------------------------------
    with pytest.raises(kalshi_python.NotFoundException) as missing:
        alice.get_order(str(uuid.uuid4()))
    assert missing.value.data.error.code == "ORDER_NOT_FOUND"
    with pytest.raises(kalshi_python.UnauthorizedException):
        anon.get_balance()

    # --- resolve and settle -------------------------------------------------------------------
    admin = await user_factory(admin=True)
    r = await client.post(
        f"/api/admin/markets/{A}/resolve", headers=admin.headers, json={"result": "yes"}
    )
    assert r.status_code == 200, r.text
    assert anon.get_market(A).market.status == "determined"
    # kit.db.session_scope, as the settlement activity: its commit returns once the market's
    # new version is published, so the Trade API process cannot answer from its cache
    async with session_scope(sessionmaker) as s:
        while not (await service.settle_batch(session=s, ticker=A)).done:
            pass
        await service.finalize_settlement(session=s, ticker=A)
    settled = anon.get_market(A).market
    assert (settled.status, settled.result) == ("settled", "yes")
    alice_settlements = alice.get_settlements().settlements
    assert [
        (x.ticker, x.result, x.yes_count, x.no_count, x.revenue) for x in alice_settlements
    ] == [(A, "yes", 4, 0, 400)]
    bob_settlements = bob.get_settlements().settlements
    assert [(x.ticker, x.result, x.yes_count, x.no_count, x.revenue) for x in bob_settlements] == [
        (A, "yes", 0, 4, 0)
    ]
    assert alice.get_balance().balance == FUNDS - 160 + 400
    assert bob.get_balance().balance == FUNDS - 240 - fee
    assert alice.get_total_resting_order_value().total_resting_order_value == 0

    # --- API keys through the SDK --------------------------------------------------------------
    keys = bob.get_api_keys().api_keys
    assert len(keys) == 1 and keys[0].name == "bot"
    fresh = new_key()
    # A signed request cannot create keys (issue 12 item 8); the owner's session can.
    with pytest.raises(kalshi_python.ForbiddenException):
        bob.create_api_key(name="second", public_key=public_pem(fresh))
    second_id = await register_key(client, bob_user.headers, fresh)
    second = sdk(trade_server, second_id, private_pem(fresh))
    assert second.get_balance().balance == bob.get_balance().balance
    assert sorted(k.api_key_id for k in bob.get_api_keys().api_keys) == sorted(
        [keys[0].api_key_id, second_id]
    )
    bob.delete_api_key(second_id)
    with pytest.raises(kalshi_python.UnauthorizedException):
        second.get_balance()

    # --- candlesticks of the traded market ---------------------------------------------------
    now = int(time.time())
    candles = anon.get_market_candlesticks(
        SERIES, A, start_ts=now - 3600, end_ts=now + 60, period_interval=1
    ).candlesticks
    assert sum(c.volume for c in candles) == 4
    traded = [c for c in candles if c.volume]
    assert traded[0].close == 40 and traded[0].end_ts - traded[0].start_ts == 60
