"""The matching semantics, pinned on the pure engine (no I/O)."""

from __future__ import annotations

import datetime as dt

import pytest

from pull.exchange.engine import (
    EngineError,
    buy_hold,
    fee_total,
    max_fee,
    taker_fee_for,
)
from pull.exchange.engine_model import Book

RICH = 1_000_000


def book(**kw: int) -> Book:
    b = Book(**kw)
    for u in ("a", "b", "c", "d"):
        b.deposit(u, RICH)
    return b


def check_invariants(b: Book) -> None:
    bid, ask = b.best_bid(), b.best_ask()
    assert bid is None or ask is None or bid < ask, (bid, ask)
    yes = sum(max(0, p.position) for p in b.positions.values())
    no = sum(max(0, -p.position) for p in b.positions.values())
    assert yes == no
    assert b.escrow == 100 * yes
    assert b.pairs == yes
    for user, held in b.held.items():
        assert held == sum(o.hold for o in b.resting() if o.user_id == user)
    assert all(v >= 0 for v in b.cash.values())
    assert all(v >= 0 for v in b.held.values())
    for user, p in b.positions.items():
        sells = sum(o.remaining for o in b.resting() if o.user_id == user and o.action == "sell")
        assert p.sell_reserved == sells
        assert sells <= abs(p.position)


def test_fee_formula_matches_kalshi() -> None:
    # 0.07 x 1 x 0.5 x 0.5 = $0.0175 -> 2 cents; 100 contracts at 50c -> $1.75
    assert taker_fee_for(1, 50, 700) == 2
    assert taker_fee_for(100, 50, 700) == 175
    assert taker_fee_for(10, 30, 700) == 15  # 0.07 x 10 x .3 x .7 = 0.147 -> 15c
    assert taker_fee_for(1, 1, 700) == 1
    assert fee_total(0, 123456) == 0
    assert max_fee(700, 10, 70) == taker_fee_for(10, 50, 700)
    assert buy_hold(10, 40, 0) == 400


def test_yes_bid_crossing_no_bid_mints_a_pair_at_resting_price() -> None:
    b = book()
    r = b.place("a", "yes", "buy", 10, 60)
    assert r.status == "resting"
    assert b.held["a"] == 600
    t = b.place("b", "no", "buy", 10, 45)  # ask at 55 in YES space: crosses the 60 bid
    assert t.status == "executed" and t.filled == 10
    assert b.trades[-1].yes_price == 60  # the resting order's price
    assert b.position("a") == 10 and b.position("b") == -10
    # b paid 100 - 60 = 40 per contract plus the taker fee at 60c
    fee = taker_fee_for(10, 60, 700)
    assert b.cash["b"] == RICH - 400 - fee
    assert b.escrow == 1000 and b.fees == fee
    assert b.held["a"] == 0 and b.cash["a"] == RICH - 600
    check_invariants(b)


def test_price_time_priority() -> None:
    b = book()
    first = b.place("a", "yes", "buy", 5, 50)
    second = b.place("b", "yes", "buy", 5, 50)
    better = b.place("c", "yes", "buy", 5, 51)
    t = b.place("d", "no", "buy", 7, 50)  # ask 50: takes 51 first, then the older 50
    assert [e.maker_order_id for e in t.result.executions] == [better.order.id, first.order.id]
    assert [e.count for e in t.result.executions] == [5, 2]
    assert b.orders[first.order.id].remaining == 3
    assert b.orders[second.order.id].remaining == 5
    check_invariants(b)


def test_selling_held_contracts_transfers_them() -> None:
    b = book()
    b.place("a", "yes", "buy", 10, 40)
    b.place("b", "no", "buy", 10, 60)  # pair minted at 40
    sell = b.place("a", "yes", "sell", 4, 55)
    assert sell.status == "resting" and sell.order.hold == 0  # nothing held for a sell
    assert b.positions["a"].sell_reserved == 4
    cash_a = b.cash["a"]
    t = b.place("c", "yes", "buy", 4, 55)
    assert t.filled == 4
    assert b.position("a") == 6 and b.position("c") == 4 and b.position("b") == -10
    assert b.cash["a"] == cash_a + 4 * 55  # maker fee 0
    assert b.escrow == 1000  # no new pair
    assert b.positions["a"].realized_pnl == 4 * 55 - 160
    check_invariants(b)


def test_cannot_sell_more_than_held() -> None:
    b = book()
    with pytest.raises(EngineError) as e:
        b.place("a", "yes", "sell", 1, 50)
    assert e.value.code == "INSUFFICIENT_POSITION"


def test_buying_the_opposite_side_nets_and_returns_collateral() -> None:
    b = book()
    b.place("a", "yes", "buy", 10, 40)
    b.place("b", "no", "buy", 10, 60)  # a: +10 YES at 40
    b.place("c", "yes", "buy", 10, 30)  # a resting bid at 30 for a's NO buy to hit
    cash_before = b.cash["a"]
    t = b.place("a", "no", "buy", 10, 70)  # ask at 30: matches c's bid at 30
    assert t.filled == 10
    assert b.position("a") == 0 and b.position("c") == 10 and b.position("b") == -10
    # a paid 70 per NO contract and got 100 per netted pair back: +30 each, minus the fee
    assert b.cash["a"] == cash_before + 10 * 30 - taker_fee_for(10, 30, 700)
    assert b.escrow == 1000
    assert b.positions["a"].realized_pnl == 300 - 400
    check_invariants(b)


def test_sells_on_both_sides_burn_pairs() -> None:
    b = book()
    b.place("a", "yes", "buy", 5, 50)
    b.place("b", "no", "buy", 5, 50)
    b.place("a", "yes", "sell", 5, 60)  # ask 60
    t = b.place("b", "no", "sell", 5, 40)  # bid 60 -> both close
    assert t.filled == 5
    assert b.escrow == 0 and b.open_interest() == 0
    check_invariants(b)


def test_fill_or_kill_all_or_nothing() -> None:
    b = book()
    b.place("a", "yes", "buy", 5, 50)
    t = b.place("b", "no", "buy", 6, 50, time_in_force="fill_or_kill")
    assert t.status == "canceled" and t.filled == 0
    assert b.position("b") == 0 and b.orders[next(iter(b.orders))].remaining == 5
    assert b.cash["b"] == RICH
    t2 = b.place("b", "no", "buy", 5, 50, time_in_force="fill_or_kill")
    assert t2.status == "executed" and t2.filled == 5
    check_invariants(b)


def test_immediate_or_cancel_fills_what_it_can() -> None:
    b = book()
    b.place("a", "yes", "buy", 5, 50)
    t = b.place("b", "no", "buy", 8, 50, time_in_force="immediate_or_cancel")
    assert t.status == "canceled" and t.filled == 5
    assert b.best_ask() is None  # the rest did not rest
    assert b.held.get("b", 0) == 0
    check_invariants(b)


def test_post_only_rejected_when_it_would_cross() -> None:
    b = book()
    b.place("a", "yes", "buy", 5, 50)
    with pytest.raises(EngineError) as e:
        b.place("b", "no", "buy", 1, 50, post_only=True)
    assert e.value.code == "POST_ONLY_WOULD_CROSS"
    ok = b.place("b", "no", "buy", 1, 49, post_only=True)  # ask 51: no cross
    assert ok.status == "resting"
    check_invariants(b)


def test_reduce_only_never_grows_or_flips() -> None:
    b = book()
    b.place("a", "yes", "buy", 5, 50)
    b.place("b", "no", "buy", 5, 50)  # a +5
    b.place("c", "yes", "buy", 20, 40)
    t = b.place("a", "no", "buy", 8, 60, reduce_only=True)  # ask 40: nets at most 5
    assert t.filled == 5 and t.status == "canceled"
    assert b.position("a") == 0
    with_no_position = b.place("d", "no", "buy", 3, 60, reduce_only=True)
    assert with_no_position.filled == 0 and with_no_position.status == "canceled"
    assert b.position("d") == 0
    check_invariants(b)


def test_self_trade_prevention_taker_at_cross_cancels_the_taker() -> None:
    b = book()
    own = b.place("a", "yes", "buy", 5, 50)
    b.place("b", "yes", "buy", 5, 49)
    t = b.place("a", "no", "buy", 5, 55)  # would meet a's own 50 bid first
    assert t.status == "canceled" and t.filled == 0
    assert t.result.cancel_reason == "self_trade"
    assert b.status[own.order.id] == "resting"
    check_invariants(b)


def test_self_trade_prevention_maker_cancels_the_resting_order() -> None:
    b = book()
    own = b.place("a", "yes", "buy", 5, 50)
    b.place("b", "yes", "buy", 5, 49)
    t = b.place("a", "no", "buy", 5, 55, self_trade_prevention="maker")
    assert b.status[own.order.id] == "canceled"
    assert t.filled == 5 and b.trades[-1].yes_price == 49
    assert b.held["a"] == 0
    check_invariants(b)


def test_market_order_sweeps_levels() -> None:
    b = book()
    b.place("a", "no", "buy", 3, 60)  # ask 40
    b.place("b", "no", "buy", 3, 55)  # ask 45
    t = b.place("c", "yes", "buy", 5, is_market=True)
    assert t.filled == 5 and t.status == "executed"
    assert [(e.yes_price, e.count) for e in t.result.executions] == [(40, 3), (45, 2)]
    t2 = b.place("c", "yes", "buy", 5, is_market=True)
    assert t2.filled == 1 and t2.status == "canceled"  # market orders never rest
    check_invariants(b)


def test_buy_max_cost_is_fill_or_kill_within_budget() -> None:
    b = book()
    b.place("a", "no", "buy", 10, 60)  # ask 40
    cost_10 = 400 + taker_fee_for(10, 40, 700)
    t = b.place("c", "yes", "buy", 10, is_market=True, buy_max_cost=cost_10 - 1)
    assert t.status == "canceled" and t.filled == 0 and b.position("c") == 0
    t = b.place("c", "yes", "buy", 10, is_market=True, buy_max_cost=cost_10)
    assert t.status == "executed" and t.filled == 10
    assert b.cash["c"] == RICH - cost_10
    check_invariants(b)


def test_amend_keeps_priority_only_when_size_goes_down() -> None:
    b = book()
    first = b.place("a", "yes", "buy", 5, 50)
    b.place("b", "yes", "buy", 5, 50)
    b.amend(first.order.id, price=50, count=3)  # smaller: keeps its place
    t = b.place("c", "no", "buy", 1, 50)
    assert t.result.executions[0].maker_order_id == first.order.id
    assert b.held["a"] == 2 * 50
    b.amend(first.order.id, price=50, count=6)  # bigger: to the back of the queue
    t = b.place("c", "no", "buy", 1, 50)
    assert t.result.executions[0].maker_order_id != first.order.id
    check_invariants(b)


def test_amend_to_a_crossing_price_trades() -> None:
    b = book()
    mine = b.place("a", "yes", "buy", 5, 40)
    b.place("b", "no", "buy", 5, 55)  # ask 45
    placed = b.amend(mine.order.id, price=45, count=5)
    assert placed.filled == 5 and b.position("a") == 5
    check_invariants(b)


def test_expired_orders_do_not_trade() -> None:
    b = book()
    soon = b.now + dt.timedelta(minutes=1)
    old = b.place("a", "yes", "buy", 5, 50, expiration_ts=soon)
    b.now = soon
    t = b.place("b", "no", "buy", 5, 50)
    assert t.filled == 0 and t.status == "resting"
    assert b.status[old.order.id] == "canceled"
    assert b.held["a"] == 0 and b.cash["a"] == RICH
    check_invariants(b)


def test_fee_accumulator_partial_fills_never_pay_more() -> None:
    b = book()
    for _ in range(10):
        b.place("a", "no", "buy", 1, 50)  # ten asks of one contract at 50
    t = b.place("c", "yes", "buy", 10, 50)
    per_fill = [e.taker_fee for e in t.result.executions]
    assert sum(per_fill) == taker_fee_for(10, 50, 700) == 18
    assert sum(taker_fee_for(1, 50, 700) for _ in range(10)) == 20  # what naive rounding costs
    check_invariants(b)


def test_maker_fee_from_schedule() -> None:
    b = book(maker_fee_bps=175)
    r = b.place("a", "yes", "buy", 100, 50)
    assert r.order.hold == 5000 + max_fee(175, 100, 50)
    b.place("b", "no", "buy", 40, 50)
    b.place("b", "no", "buy", 60, 50)
    assert b.fees == taker_fee_for(40, 50, 700) + taker_fee_for(60, 50, 700) + fee_total(
        175, 100 * 50 * 50
    )
    assert b.held["a"] == 0
    check_invariants(b)


def test_netting_shrinks_resting_sells() -> None:
    b = book()
    b.place("a", "yes", "buy", 10, 50)
    b.place("b", "no", "buy", 10, 50)  # a +10
    sell = b.place("a", "yes", "sell", 10, 90)  # all 10 reserved
    b.place("c", "yes", "buy", 4, 40)
    b.place("a", "no", "buy", 4, 60)  # nets 4 away
    assert b.position("a") == 6
    assert b.orders[sell.order.id].remaining == 6
    check_invariants(b)


def test_insufficient_funds_changes_nothing() -> None:
    b = Book()
    b.deposit("poor", 100)
    with pytest.raises(EngineError) as e:
        b.place("poor", "yes", "buy", 5, 50)
    assert e.value.code == "INSUFFICIENT_FUNDS"
    assert b.cash["poor"] == 100 and b.resting() == []


# --- random order flow on the in-memory book ---------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

USERS = ["u0", "u1", "u2", "u3", "u4"]
op = st.tuples(
    st.sampled_from(["place", "place", "place", "cancel", "amend", "decrease"]),
    st.sampled_from(USERS),
    st.sampled_from(["yes", "no"]),
    st.sampled_from(["buy", "buy", "sell"]),
    st.integers(1, 12),
    st.integers(1, 99),
    st.sampled_from(["good_till_canceled", "immediate_or_cancel", "fill_or_kill"]),
    st.booleans(),
    st.sampled_from(["taker_at_cross", "maker"]),
    st.integers(0, 30),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, min_size=1, max_size=60), st.sampled_from([0, 175]))
def test_random_flow_keeps_invariants(ops: list[tuple], maker_bps: int) -> None:  # type: ignore[type-arg]
    b = Book(maker_fee_bps=maker_bps)
    for u in USERS:
        b.deposit(u, 5_000)
    total = sum(b.cash.values())
    for kind, user, side, action, count, price, tif, flag, stp, pick in ops:
        try:
            if kind == "place":
                b.place(
                    user,
                    side,
                    action,
                    count,
                    price,
                    time_in_force=tif,
                    post_only=flag and tif == "good_till_canceled",
                    reduce_only=flag and tif != "good_till_canceled",
                    self_trade_prevention=stp,
                    is_market=pick == 0,
                )
            else:
                resting = b.resting()
                if not resting:
                    continue
                o = resting[pick % len(resting)]
                if kind == "cancel":
                    b.cancel(o.id)
                elif kind == "decrease":
                    b.decrease(o.id, reduce_to=o.remaining // 2)
                else:
                    b.amend(o.id, price=price, count=o.fill_count + count)
        except EngineError:
            pass
        check_invariants(b)
        assert sum(b.cash.values()) + sum(b.held.values()) + b.escrow + b.fees == total
