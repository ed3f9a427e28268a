"""Withdrawal fees in integer cents (rounded up to the cent)."""

from __future__ import annotations

from typing import Literal

Speed = Literal["standard", "instant"]

STANDARD_BPS, STANDARD_MIN, STANDARD_MAX = 25, 25, 500  # 0.25%, min 25 cents, max $5.00
INSTANT_BPS, INSTANT_MIN = 100, 50  # 1%, min 50 cents


def _ceil_bps(amount: int, bps: int) -> int:
    return -(-amount * bps // 10_000)


def withdrawal_fee(amount: int, speed: Speed) -> int:
    if amount <= 0:
        raise ValueError("amount must be positive")
    if speed == "standard":
        return min(max(_ceil_bps(amount, STANDARD_BPS), STANDARD_MIN), STANDARD_MAX)
    if speed == "instant":
        return max(_ceil_bps(amount, INSTANT_BPS), INSTANT_MIN)
    raise ValueError(f"unknown speed {speed!r}")
