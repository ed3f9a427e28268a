"""Tier limits in cents: the issue's table, overridable per tier and limit with KYC_LIMITS.

"Daily" and "monthly" are rolling windows of 24 hours and 30 days. `instant_credit` is how much
of a pending deposit is spendable before it settles (see docs/kyc.md).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Literal

from pull.kyc.schemas import TIER_ORDER, Tier

Action = Literal["deposit", "withdrawal", "trade"]
ACTIONS: tuple[Action, ...] = ("deposit", "withdrawal", "trade")

DAY = dt.timedelta(hours=24)
MONTH = dt.timedelta(days=30)

LIMIT_NAMES = (
    "daily_deposit",
    "daily_withdrawal",
    "daily_trading",
    "monthly_deposit",
    "monthly_withdrawal",
    "single_trade_max",
    "instant_credit",
)

_D = 100  # cents per dollar

DEFAULT_LIMITS: dict[Tier, dict[str, int]] = {
    Tier.none: dict.fromkeys(LIMIT_NAMES, 0),
    Tier.basic: {
        "daily_deposit": 1_000 * _D,
        "daily_withdrawal": 500 * _D,
        "daily_trading": 5_000 * _D,
        "monthly_deposit": 5_000 * _D,
        "monthly_withdrawal": 2_500 * _D,
        "single_trade_max": 500 * _D,
        "instant_credit": 0,
    },
    Tier.standard: {
        "daily_deposit": 10_000 * _D,
        "daily_withdrawal": 5_000 * _D,
        "daily_trading": 50_000 * _D,
        "monthly_deposit": 50_000 * _D,
        "monthly_withdrawal": 25_000 * _D,
        "single_trade_max": 5_000 * _D,
        "instant_credit": 250 * _D,
    },
    Tier.enhanced: {
        "daily_deposit": 50_000 * _D,
        "daily_withdrawal": 25_000 * _D,
        "daily_trading": 250_000 * _D,
        "monthly_deposit": 250_000 * _D,
        "monthly_withdrawal": 100_000 * _D,
        "single_trade_max": 25_000 * _D,
        "instant_credit": 1_000 * _D,
    },
    Tier.accredited: {
        "daily_deposit": 500_000 * _D,
        "daily_withdrawal": 250_000 * _D,
        "daily_trading": 2_500_000 * _D,
        "monthly_deposit": 2_500_000 * _D,
        "monthly_withdrawal": 1_000_000 * _D,
        "single_trade_max": 250_000 * _D,
        "instant_credit": 5_000 * _D,
    },
}


@dataclass(frozen=True)
class Window:
    name: Literal["daily", "monthly"]
    length: dt.timedelta
    limit_name: str


# The rolling windows checked per action (trades have no monthly cap in the table).
WINDOWS: dict[Action, tuple[Window, ...]] = {
    "deposit": (
        Window("daily", DAY, "daily_deposit"),
        Window("monthly", MONTH, "monthly_deposit"),
    ),
    "withdrawal": (
        Window("daily", DAY, "daily_withdrawal"),
        Window("monthly", MONTH, "monthly_withdrawal"),
    ),
    "trade": (Window("daily", DAY, "daily_trading"),),
}


@dataclass(frozen=True)
class LimitPolicy:
    limits: dict[Tier, dict[str, int]]

    def of(self, tier: Tier, name: str) -> int:
        return self.limits[tier][name]

    @classmethod
    def from_overrides(cls, overrides: str | dict[str, dict[str, int]] | None) -> LimitPolicy:
        """The default table with `overrides` (a JSON object or dict: tier → limit → cents)."""
        table = {tier: dict(values) for tier, values in DEFAULT_LIMITS.items()}
        if isinstance(overrides, str):
            overrides = json.loads(overrides) if overrides.strip() else {}
        for tier_name, values in (overrides or {}).items():
            tier = Tier(tier_name)
            for name, cents in values.items():
                if name not in LIMIT_NAMES:
                    raise ValueError(f"KYC_LIMITS: unknown limit {name!r}")
                if not isinstance(cents, int) or isinstance(cents, bool) or cents < 0:
                    raise ValueError(f"KYC_LIMITS: {tier_name}.{name} must be cents >= 0")
                table[tier][name] = cents
        if any(table[Tier.none][name] for name in LIMIT_NAMES):
            raise ValueError("KYC_LIMITS: the tier 'none' allows nothing")
        return cls(table)


def lowest_tier_allowing(policy: LimitPolicy, action: Action) -> Tier:
    """The first tier whose limits allow some of `action` (the `required_tier` of a 403)."""
    name = WINDOWS[action][0].limit_name
    for tier in TIER_ORDER:
        if policy.of(tier, name) > 0:
            return tier
    return Tier.basic
