"""Withdrawal fees: the schedule's edges, and properties over all amounts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pull.funding.fees import withdrawal_fee
from pull.funding.providers.base import cents_to_decimal, decimal_to_cents


@pytest.mark.parametrize(
    ("amount", "speed", "fee"),
    [
        (100, "standard", 25),  # 0.25% of $1 rounds to 1 cent: the 25 cent minimum
        (10_000, "standard", 25),
        (10_001, "standard", 26),  # rounded up to the cent
        (200_000, "standard", 500),
        (10_000_000, "standard", 500),  # capped at $5.00
        (100, "instant", 50),
        (5_000, "instant", 50),
        (5_001, "instant", 51),
        (1_000_000, "instant", 10_000),  # no cap
    ],
)
def test_schedule(amount: int, speed: str, fee: int) -> None:
    assert withdrawal_fee(amount, speed) == fee  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=10**12))
def test_fee_properties(amount: int) -> None:
    standard = withdrawal_fee(amount, "standard")
    instant = withdrawal_fee(amount, "instant")
    assert 25 <= standard <= 500
    assert standard * 10_000 >= amount * 25 or standard == 500  # at least 0.25% below the cap
    assert (standard - 1) * 10_000 < amount * 25 or standard == 25  # and no more than needed
    assert instant >= 50 and instant * 10_000 >= amount * 100
    assert isinstance(standard, int) and isinstance(instant, int)


@given(st.integers(min_value=0, max_value=10**15))
def test_plaid_amount_strings_round_trip(cents: int) -> None:
    assert decimal_to_cents(cents_to_decimal(cents)) == cents


def test_plaid_amount_strings_are_strict() -> None:
    assert decimal_to_cents("12.3") == 1230
    for bad in ("1.234", "-1.00", "abc", "1e3"):
        with pytest.raises(ValueError):
            decimal_to_cents(bad)
