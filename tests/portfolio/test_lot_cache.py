"""The per-user lot cache (`portfolio/lot_cache.py`): a repeat view does not read or replay the
fills again, and a new fill (or a buyout distribution, an issued subscription, a brokerage
correction: each source's version) shows in the very next response. The valuation in
integers gives exactly what the `Decimal` arithmetic gives."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.portfolio import lot_cache, lots, sources, valuation
from tests.portfolio.conftest import call, create_market, fund, order


def _yes(body: dict[str, Any], ticker: str) -> dict[str, Any]:
    [h] = [h for h in body["holdings"] if h["symbol"] == f"{ticker}:YES"]
    return dict(h)


async def test_a_new_fill_shows_in_the_next_response(
    api_server: str,
    user_factory: Any,
    kyc_tier: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Through a real `pull api` process: the second view is the first's (from the cache), and
    a fill between two views is in the second."""
    ticker = await create_market(sessionmaker)
    a, b = await user_factory(), await user_factory()
    for u in (a, b):
        await kyc_tier(u.id, "standard")
        await fund(sessionmaker, u.id, 100_000)
    await order(api_server, a, ticker=ticker, side="yes", action="buy", count=10, yes_price=40)
    await order(api_server, b, ticker=ticker, side="no", action="buy", count=10, no_price=60)

    first = (await call(api_server, a, "GET", "/api/v1/portfolio")).json()
    again = (await call(api_server, a, "GET", "/api/v1/portfolio")).json()
    assert _yes(first, ticker)["quantity"] == "10"
    assert {**again, "as_of": None} == {**first, "as_of": None}

    await order(api_server, a, ticker=ticker, side="yes", action="buy", count=5, yes_price=45)
    await order(api_server, b, ticker=ticker, side="no", action="buy", count=5, no_price=55)
    after = (await call(api_server, a, "GET", "/api/v1/portfolio")).json()
    yes = _yes(after, ticker)
    assert yes["quantity"] == "15" and len(yes["lots"]) == 2, yes
    assert yes["cost_basis"] == 400 + 225


async def test_a_repeat_view_does_not_replay(
    client: httpx.AsyncClient,
    user_factory: Any,
    kyc_tier: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In-process (to count calls): the fills are read and replayed on a miss only."""
    calls = {"fills": 0, "replay": 0}
    read, replay = sources.prediction_events, lot_cache.replay

    async def counted_read(*a: Any) -> Any:
        calls["fills"] += 1
        return await read(*a)

    def counted_replay(events: Any) -> lots.LotBook:
        calls["replay"] += 1
        return replay(events)

    monkeypatch.setattr(sources, "prediction_events", counted_read)
    monkeypatch.setattr(lot_cache, "replay", counted_replay)
    ticker = await create_market(sessionmaker)
    a, b = await user_factory(), await user_factory()
    for u in (a, b):
        await kyc_tier(u.id, "standard")
        await fund(sessionmaker, u.id, 100_000)

    async def place(u: Any, **body: Any) -> None:
        r = await client.post("/api/v1/orders", json=body, headers=u.headers)
        assert r.status_code == 201, r.text

    async def view() -> dict[str, Any]:
        r = await client.get("/api/v1/portfolio", headers=a.headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    await place(a, ticker=ticker, side="yes", action="buy", count=10, yes_price=40)
    await place(b, ticker=ticker, side="no", action="buy", count=10, no_price=60)
    lot_cache.clear()
    assert _yes(await view(), ticker)["quantity"] == "10"
    assert calls == {"fills": 1, "replay": 1}
    for _ in range(3):
        assert _yes(await view(), ticker)["quantity"] == "10"
    assert calls == {"fills": 1, "replay": 1}  # three repeats: no read, no replay

    # the mark moves (others trade at 70) while a's lots do not: revalued, not replayed
    c = await user_factory()
    await kyc_tier(c.id, "standard")
    await fund(sessionmaker, c.id, 100_000)
    await place(b, ticker=ticker, side="yes", action="buy", count=1, yes_price=70)
    await place(c, ticker=ticker, side="no", action="buy", count=1, no_price=30)
    yes = _yes(await view(), ticker)
    assert yes["mark"] == "70.0000" and yes["market_value"] == 700, yes
    assert yes["unrealized_pnl"] == 700 - 400 and yes["quantity"] == "10"
    assert calls == {"fills": 1, "replay": 1}

    # a's sale of 4 fills: the next view replays and shows it
    await place(a, ticker=ticker, side="yes", action="sell", count=4, yes_price=50)
    await place(b, ticker=ticker, side="yes", action="buy", count=4, yes_price=50)
    yes = _yes(await view(), ticker)
    assert yes["quantity"] == "6" and yes["realized_pnl"] == 4 * 50 - 4 * 40, yes
    assert yes["mark"] == "50.0000" and yes["market_value"] == 300
    assert calls == {"fills": 2, "replay": 2}
    await view()
    assert calls == {"fills": 2, "replay": 2}


# --- the integer valuation against the Decimal arithmetic ---------------------------------

DAY = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
_quantity = st.one_of(
    st.integers(1, 10_000).map(Decimal),
    st.decimals(Decimal("0.000000001"), Decimal(500), places=9),
)
_price = st.one_of(
    st.integers(0, 100_000).map(Decimal),
    st.decimals(Decimal(0), Decimal(100_000), places=4),
)


@settings(max_examples=300, deadline=None)
@given(
    buys=st.lists(
        st.tuples(st.booleans(), _quantity, st.integers(0, 10_000_000)), min_size=1, max_size=6
    ),
    sell=st.integers(0, 3),
    mark=st.none() | _price,
    prev=st.none() | _price,
)
def test_valuation_matches_the_decimal_arithmetic(
    buys: list[tuple[bool, Decimal, int]],
    sell: int,
    mark: Decimal | None,
    prev: Decimal | None,
) -> None:
    events = [
        lots.LotEvent(DAY + dt.timedelta(hours=-30 if before else 1, minutes=i), q, cash, 0, i)
        for i, (before, q, cash) in enumerate(buys)
    ]
    if sell:
        events.append(lots.LotEvent(DAY + dt.timedelta(hours=5), -buys[0][1] / sell, 100, 0, 99))
    book = lots.replay(events)
    if not book.open:
        return
    inst = sources.Instrument("stock", "X", "X", mark=mark, previous_close=prev)
    if mark is not None:
        inst.mark_source = "quote_mid"
    got = valuation.holding(inst, lot_cache.book_of(events), DAY)

    m = mark if mark is not None else Decimal(book.cost) / book.quantity
    values = [int((lot.quantity * m).to_integral_value(rounding=ROUND_FLOOR)) for lot in book.open]
    assert got["market_value"] == sum(values)
    assert [lot["market_value"] for lot in got["lots"]] == values
    assert got["quantity"] == str(book.quantity)
    assert got["mark"] == str(m.quantize(Decimal("0.0001")))
    assert got["average_cost"] == str(lots.average_cost(book))
    assert got["cost_basis"] == book.cost and got["realized_pnl"] == book.realized
    expected = (
        lots.day_change(book, mark=m, previous_close=prev, day_start=DAY) if mark is not None else 0
    )
    assert got["day_change"] == expected
    assert got["mark_source"] == ("quote_mid" if mark is not None else "cost")
