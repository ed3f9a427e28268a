"""Property tests (hypothesis) of the portfolio's arithmetic, for random activity across
prediction contracts, RWA shares and fractional stock, with deposits and withdrawals:

- value = cash + sum of holdings x mark (an independent model of cash and positions);
- realized + unrealized P&L = value - net deposits (nothing leaks out of the lots);
- the time-weighted return equals an independent unit-value (NAV per unit) computation.

The portfolio code under test is the one the endpoint runs: `sources.binary_events`,
`lots.replay`, `lot_cache.book_of` and `valuation.holding` (the HTTP view over real modules is in
test_portfolio_api.py)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pull.exchange.holdings import FillRow
from pull.portfolio import history as hist
from pull.portfolio import lot_cache, valuation
from pull.portfolio.lots import LotEvent, replay
from pull.portfolio.sources import Instrument, binary_events

T0 = dt.datetime(2026, 1, 5, 15, tzinfo=dt.UTC)

action = st.one_of(
    st.tuples(st.just("deposit"), st.integers(1, 50_000)),
    st.tuples(st.just("withdraw"), st.integers(1, 50_000)),
    # prediction fill: side, action, count, yes price, fee
    st.tuples(
        st.just("fill"),
        st.sampled_from(["yes", "no"]),
        st.sampled_from(["buy", "sell"]),
        st.integers(1, 20),
        st.integers(1, 99),
        st.integers(0, 30),
    ),
    # RWA shares: buy/sell whole shares at a price in cents
    st.tuples(st.just("rwa"), st.booleans(), st.integers(1, 10), st.integers(100, 5_000)),
    # stock: hundredths of a share at a whole-dollar price
    st.tuples(st.just("stock"), st.booleans(), st.integers(1, 500), st.integers(1, 300)),
)


@settings(max_examples=300, deadline=None)
@given(
    actions=st.lists(action, min_size=1, max_size=40),
    yes_mark=st.integers(0, 100),
    rwa_mark=st.integers(100, 5_000),
    stock_mark=st.integers(1, 300),
)
def test_value_and_pnl_identities(
    actions: list[tuple[object, ...]], yes_mark: int, rwa_mark: int, stock_mark: int
) -> None:
    cash = 0
    net_deposits = 0
    yes_space = 0  # the exchange's signed position
    rwa_held = 0
    stock_held = Decimal(0)
    fills: list[FillRow] = []
    rwa_events: list[LotEvent] = []
    stock_events: list[LotEvent] = []
    for i, a in enumerate(actions):
        at = T0 + dt.timedelta(minutes=i)
        kind = a[0]
        if kind == "deposit":
            cash += int(a[1])  # type: ignore[call-overload]
            net_deposits += int(a[1])  # type: ignore[call-overload]
        elif kind == "withdraw":
            amount = min(int(a[1]), cash)  # type: ignore[call-overload]
            cash -= amount
            net_deposits -= amount
        elif kind == "fill":
            _, side, act, count, p, fee = a
            up = (side == "yes") == (act == "buy")
            count, p, fee = int(count), int(p), int(fee)  # type: ignore[call-overload]
            # the exchange: closing against held opposite contracts pays their pair value
            held_opp = max(0, -yes_space) if up else max(0, yes_space)
            closing = min(count, held_opp)
            opening = count - closing
            own = p if up else 100 - p
            cost = opening * own + fee
            if cost > cash + closing * (100 - own):
                continue
            cash += closing * (100 - own) - opening * own - fee
            yes_space += count if up else -count
            fills.append(FillRow(i, "T", str(side), str(act), count, p, fee, at))
        elif kind == "rwa":
            _, buy, n, price = a
            n, price = int(n), int(price)  # type: ignore[call-overload]
            if buy and n * price <= cash:
                cash -= n * price
                rwa_held += n
                rwa_events.append(LotEvent(at, Decimal(n), n * price, 0, i))
            elif not buy and n <= rwa_held:
                cash += n * price
                rwa_held -= n
                rwa_events.append(LotEvent(at, Decimal(-n), n * price, 0, i))
        else:
            _, buy, hundredths, dollars = a
            q = Decimal(int(hundredths)) / 100  # type: ignore[call-overload]
            cents = int(q * int(dollars) * 100)  # type: ignore[call-overload]
            if buy and cents <= cash:
                cash -= cents
                stock_held += q
                stock_events.append(LotEvent(at, q, cents, 0, i))
            elif not buy and q <= stock_held:
                cash += cents
                stock_held -= q
                stock_events.append(LotEvent(at, -q, cents, 0, i))

    sides = binary_events(fills, [])["T"] if fills else {"YES": [], "NO": []}
    marks = {
        "T:YES": Decimal(yes_mark),
        "T:NO": Decimal(100 - yes_mark),
        "RWA1": Decimal(rwa_mark),
        "AAPL": Decimal(stock_mark * 100),
    }
    instruments = [
        Instrument("prediction", "T:YES", "T", sides["YES"]),
        Instrument("prediction", "T:NO", "T", sides["NO"]),
        Instrument("rwa", "RWA1", "card", rwa_events),
        Instrument("stock", "AAPL", "AAPL", stock_events),
    ]
    day = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    holdings = []
    realized = 0
    for inst in instruments:
        book = replay(inst.events)
        assert book.unmatched == 0
        realized += book.realized
        inst.mark, inst.mark_source = marks[inst.symbol], "mid"
        holdings.append(valuation.holding(inst, lot_cache.book_of(inst.events), day))
    qty = {h["symbol"]: Decimal(h["quantity"]) for h in holdings}
    assert qty["T:YES"] == max(yes_space, 0) and qty["T:NO"] == max(-yes_space, 0)
    assert qty["RWA1"] == rwa_held and qty["AAPL"] == stock_held

    value = cash + sum(h["market_value"] for h in holdings)
    independent = (
        cash
        + max(yes_space, 0) * yes_mark
        + max(-yes_space, 0) * (100 - yes_mark)
        + rwa_held * rwa_mark
        + int(stock_held * stock_mark * 100)
    )
    assert value == independent
    unrealized = sum(h["unrealized_pnl"] for h in holdings)
    assert realized + unrealized == value - net_deposits


@st.composite
def equity_paths(draw: st.DrawFn) -> list[hist.Sample]:
    """A positive starting equity, then per step a market return and a flow that never takes
    more than the account holds."""
    e = draw(st.integers(1_000, 10_000_000))
    d = e
    out = [hist.Sample(T0, e, d)]
    for i in range(draw(st.integers(1, 30))):
        flow = draw(st.integers(-(e - 1), 5_000_000))
        growth = draw(st.floats(0.5, 1.5))
        e = max(1, round((e + flow) * growth))
        d += flow
        out.append(hist.Sample(T0 + dt.timedelta(days=i + 1), e, d))
    return out


@settings(max_examples=300, deadline=None)
@given(path=equity_paths())
def test_twr_equals_unit_value_method(path: list[hist.Sample]) -> None:
    """Unit values: units are bought or sold at the last unit price when money moves; the
    return is the change of the unit price. Deposits and withdrawals never change it."""
    units = 1.0
    price = path[0].equity / units
    for prev, cur in itertools.pairwise(path):
        flow = cur.net_deposits - prev.net_deposits
        units += flow / price
        price = cur.equity / units
    expected = price / (path[0].equity / 1.0) - 1
    got = hist.series(path).profit_loss_pct[-1]
    assert math.isclose(got, round(expected, 6), rel_tol=1e-6, abs_tol=2e-6)
    s = hist.series(path)
    assert s.profit_loss[-1] == (path[-1].equity - path[0].equity) - (
        path[-1].net_deposits - path[0].net_deposits
    )


def test_a_deposit_alone_is_no_gain() -> None:
    path = [
        hist.Sample(T0, 100_000, 100_000),
        hist.Sample(T0 + dt.timedelta(days=1), 200_000, 200_000),
    ]
    s = hist.series(path)
    assert s.profit_loss == [0, 0] and s.profit_loss_pct == [0.0, 0.0]
    assert s.deposits == [0, 100_000]
