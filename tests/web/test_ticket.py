"""The order ticket's arithmetic (what the page shows before an order is sent)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from pull.web.chart import price_chart
from pull.web.client import ApiError
from pull.web.fmt import money
from pull.web.ticket import estimate

BOOK = {"yes": [[37, 500], [36, 200]], "no": [[61, 500], [59, 100]]}  # YES asks 39 and 41


def test_a_quick_buy_walks_the_offers_and_pays_one_fee_over_its_fills() -> None:
    est = estimate(BOOK, side="yes", action="buy", count=550, limit=None, taker_fee_bps=700)
    assert (est.filled, est.resting) == (550, 0)
    assert est.fill_cost == 500 * 39 + 50 * 41
    basis = 500 * 39 * 61 + 50 * 41 * 59
    assert est.taker_fee == math.ceil(700 * basis / 1_000_000)
    assert est.payout == 550 * 100 and est.average_price == round(est.fill_cost / 550)
    assert est.total == est.fill_cost + est.taker_fee


def test_the_journeys_order_costs_what_the_journey_test_says() -> None:
    est = estimate(BOOK, side="yes", action="buy", count=10, limit=None, taker_fee_bps=700)
    assert (est.fill_cost, est.taker_fee, est.total, est.payout) == (390, 17, 407, 1000)


def test_a_limit_buy_below_the_offer_rests_and_holds_its_price() -> None:
    est = estimate(BOOK, side="no", action="buy", count=20, limit=50, taker_fee_bps=700)
    assert est.filled == 0 and est.resting == 20 and est.resting_cost == 1000
    assert est.taker_fee == 0 and est.total == 1000 and est.payout == 2000


def test_a_sell_hits_the_bids_on_its_own_side_and_nets_the_fee() -> None:
    est = estimate(BOOK, side="yes", action="sell", count=4, limit=37, taker_fee_bps=700)
    assert (est.filled, est.fill_cost, est.taker_fee) == (4, 148, 7)
    assert est.total == 141 and est.payout == 0


@given(
    yes=st.lists(st.tuples(st.integers(1, 99), st.integers(1, 1000)), max_size=6),
    no=st.lists(st.tuples(st.integers(1, 99), st.integers(1, 1000)), max_size=6),
    side=st.sampled_from(["yes", "no"]),
    action=st.sampled_from(["buy", "sell"]),
    count=st.integers(1, 5000),
    limit=st.one_of(st.none(), st.integers(1, 99)),
)
def test_estimates_never_promise_more_than_the_order(
    yes: list[tuple[int, int]],
    no: list[tuple[int, int]],
    side: str,
    action: str,
    count: int,
    limit: int | None,
) -> None:
    book = {"yes": sorted(yes, reverse=True), "no": sorted(no, reverse=True)}
    est = estimate(book, side=side, action=action, count=count, limit=limit, taker_fee_bps=700)
    assert 0 <= est.filled <= count and est.filled + est.resting <= count
    if limit is not None:
        assert est.filled + est.resting == count
        if action == "buy":
            assert est.fill_cost <= est.filled * limit  # never above the limit
        else:
            assert est.fill_cost >= est.filled * limit
    assert 0 <= est.taker_fee <= math.ceil(700 * est.filled * 2500 / 1_000_000)
    if action == "buy":
        assert est.payout == (est.filled + est.resting) * 100


def test_money_and_the_chart_read_as_people_read_them() -> None:
    assert money(123456) == "$1,234.56" and money(-5) == "-$0.05" and money(None) == "—"
    chart = price_chart(
        [{"price": {"close": 40}}, {"price": {"close": None}}, {"price": {"close": 44}}]
    )
    assert chart.points == 2 and chart.last == 44 and "last 44¢" in chart.summary
    assert price_chart([]).summary == "No trades yet."


def test_api_errors_become_sentences() -> None:
    assert ApiError(400, "INSUFFICIENT_FUNDS", "x").human.startswith("You do not have enough")
    v = ApiError(
        422, "VALIDATION_ERROR", "bad", [{"loc": ["body", "first_name"], "msg": "Field required"}]
    )
    assert v.human == "Please check: first name: Field required."
    assert ApiError(500, "INTERNAL", "trace").human.startswith("Something went wrong on our side")
    assert ApiError(409, "SOMETHING_NEW", "The API's own words.").human == "The API's own words."
