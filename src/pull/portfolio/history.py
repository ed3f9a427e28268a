"""Portfolio history in Alpaca's shape, with a time-weighted return (pure functions).

Between two points i-1 and i, the cash flow F_i is the change of cumulative net deposits. It is
taken as arriving at the start of the sub-period (a deposit is invested from then on), so

    r_i = E_i / (E_{i-1} + F_i) - 1        (0 when E_{i-1} + F_i <= 0)
    profit_loss_pct_i = prod_{j<=i} (1 + r_j) - 1
    profit_loss_i = (E_i - E_0) - (D_i - D_0)

where E is equity and D cumulative net deposits. A deposit therefore moves equity but neither
the P&L nor the percentage; only what the money earned does."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

PERIODS: dict[str, dt.timedelta | None] = {
    "1D": dt.timedelta(days=1),
    "1W": dt.timedelta(weeks=1),
    "1M": dt.timedelta(days=30),
    "3M": dt.timedelta(days=91),
    "1Y": dt.timedelta(days=365),
    "ALL": None,
}
TIMEFRAMES: dict[str, dt.timedelta] = {
    "5Min": dt.timedelta(minutes=5),
    "1H": dt.timedelta(hours=1),
    "1D": dt.timedelta(days=1),
}
# Intraday points are kept for 31 days; finer steps over longer periods make no sense.
ALLOWED: dict[str, tuple[str, ...]] = {
    "1D": ("5Min", "1H"),
    "1W": ("5Min", "1H", "1D"),
    "1M": ("1H", "1D"),
    "3M": ("1D",),
    "1Y": ("1D",),
    "ALL": ("1D",),
}
DEFAULT_TIMEFRAME = {"1D": "5Min", "1W": "1H", "1M": "1D", "3M": "1D", "1Y": "1D", "ALL": "1D"}


@dataclass(frozen=True, slots=True)
class Sample:
    at: dt.datetime
    equity: int  # cents
    net_deposits: int  # cumulative cents


@dataclass(frozen=True, slots=True)
class Series:
    timestamp: list[int]
    equity: list[int]
    profit_loss: list[int]
    profit_loss_pct: list[float]
    deposits: list[int]
    withdrawals: list[int]
    base_value: int


def bucketed(samples: Sequence[Sample], step: dt.timedelta) -> list[Sample]:
    """The last sample of each `step`-long bucket (UTC-aligned), oldest first."""
    seconds = int(step.total_seconds())
    last: dict[int, Sample] = {}
    for s in sorted(samples, key=lambda s: s.at):
        last[int(s.at.timestamp()) // seconds] = s
    return [last[k] for k in sorted(last)]


def period_returns(samples: Sequence[Sample]) -> list[float]:
    """r_i for i >= 1 (flows at the start of each sub-period)."""
    out = []
    for prev, cur in itertools.pairwise(samples):
        invested = prev.equity + (cur.net_deposits - prev.net_deposits)
        out.append(cur.equity / invested - 1 if invested > 0 else 0.0)
    return out


def series(samples: Sequence[Sample]) -> Series:
    if not samples:
        return Series([], [], [], [], [], [], 0)
    base = samples[0]
    growth = 1.0
    pct = [0.0]
    for r in period_returns(samples):
        growth *= 1 + r
        pct.append(growth - 1)
    flows = [0] + [c.net_deposits - p.net_deposits for p, c in itertools.pairwise(samples)]
    return Series(
        timestamp=[int(s.at.timestamp()) for s in samples],
        equity=[s.equity for s in samples],
        profit_loss=[
            (s.equity - base.equity) - (s.net_deposits - base.net_deposits) for s in samples
        ],
        profit_loss_pct=[round(p, 6) for p in pct],
        deposits=[max(f, 0) for f in flows],
        withdrawals=[min(f, 0) for f in flows],
        base_value=base.equity,
    )
