"""The admin dashboards, computed in ClickHouse (queries in warehouse.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pull.analytics import warehouse
from pull.analytics.client import Warehouse, run
from pull.analytics.schemas import (
    FunnelResponse,
    FunnelStep,
    MarketRow,
    MarketsResponse,
    OverviewDay,
    OverviewResponse,
    OverviewTotals,
    RetentionCohort,
    RetentionResponse,
    RevenueDay,
    RevenueResponse,
)
from pull.kit.errors import Unprocessable

MAX_DAYS = 366
PRODUCTS = ("exchange", "funding")

_FACTS = (
    "signups",
    "email_verifications",
    "phone_verifications",
    "kyc_approvals",
    "deposits",
    "deposit_volume_cents",
    "withdrawals",
    "withdrawal_volume_cents",
    "trades",
    "contracts_traded",
    "trading_volume_cents",
    "trading_fees_cents",
    "withdrawal_fees_cents",
)


def date_range(start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
    """Default: the 30 days ending today (UTC). At most MAX_DAYS days."""
    end = end or dt.datetime.now(dt.UTC).date()
    start = start or end - dt.timedelta(days=29)
    if start > end:
        raise Unprocessable("start is after end", code="INVALID_RANGE")
    if (end - start).days + 1 > MAX_DAYS:
        raise Unprocessable(f"at most {MAX_DAYS} days", code="INVALID_RANGE")
    if start.year < 2000 or end.year > 2200:
        raise Unprocessable("dates must be between 2000 and 2200", code="INVALID_RANGE")
    return start, end


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _day(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


async def overview(wh: Warehouse, start: dt.date, end: dt.date) -> OverviewResponse:
    facts = await run(warehouse.daily_facts, wh, start, end)
    active = await run(warehouse.active_users, wh, start, end)
    total_active = await run(warehouse.active_total, wh, start, end)
    by_day: dict[dt.date, dict[str, int]] = {
        d: dict.fromkeys(("dau", "wau", "mau", *_FACTS), 0) for d in _days(start, end)
    }
    for row in facts:
        values = by_day.get(_day(row[0]))
        if values is not None:
            values.update({k: int(v) for k, v in zip(_FACTS, row[1:], strict=True)})
    for row in active:
        values = by_day.get(_day(row[0]))
        if values is not None:
            values.update(dau=int(row[1]), wau=int(row[2]), mau=int(row[3]))
    days = [OverviewDay(day=d, **v) for d, v in by_day.items()]
    totals = {k: sum(getattr(d, k) for d in days) for k in _FACTS}
    return OverviewResponse(
        start=start,
        end=end,
        days=days,
        totals=OverviewTotals(active_users=total_active, **totals),
    )


async def funnel(
    wh: Warehouse, start: dt.date, end: dt.date, window_seconds: int
) -> FunnelResponse:
    levels = await run(warehouse.funnel_levels, wh, start, end, window_seconds)
    exactly = {int(r[0]): int(r[1]) for r in levels}
    steps: list[FunnelStep] = []
    first = 0
    previous = 0
    for i, name in enumerate(warehouse.FUNNEL_STEPS, start=1):
        users = sum(n for level, n in exactly.items() if level >= i)
        if i == 1:
            first = previous = users
        steps.append(
            FunnelStep(
                step=name,
                users=users,
                conversion_from_previous=round(users / previous, 4) if previous else 0.0,
                conversion_from_start=round(users / first, 4) if first else 0.0,
                drop_off=previous - users,
            )
        )
        previous = users
    return FunnelResponse(start=start, end=end, window_seconds=window_seconds, steps=steps)


async def retention(wh: Warehouse, start: dt.date, end: dt.date, weeks: int) -> RetentionResponse:
    rows = await run(warehouse.retention_cohorts, wh, start, end, weeks)
    cohorts = []
    for cohort, users, retained in rows:
        kept = [int(x) for x in retained]
        n = int(users)
        cohorts.append(
            RetentionCohort(
                cohort=_day(cohort),
                users=n,
                retained=kept,
                rates=[round(k / n, 4) if n else 0.0 for k in kept],
            )
        )
    return RetentionResponse(start=start, end=end, weeks=weeks, cohorts=cohorts)


async def revenue(wh: Warehouse, start: dt.date, end: dt.date) -> RevenueResponse:
    rows = await run(warehouse.revenue_by_day, wh, start, end)
    by_day: dict[dt.date, dict[str, int]] = {
        d: dict.fromkeys(PRODUCTS, 0) for d in _days(start, end)
    }
    for day, product, fees, _count in rows:
        bucket = by_day.get(_day(day))
        if bucket is not None:
            bucket[str(product)] = bucket.get(str(product), 0) + int(fees)
    days = [RevenueDay(day=d, by_product=b, total_cents=sum(b.values())) for d, b in by_day.items()]
    totals: dict[str, int] = dict.fromkeys(PRODUCTS, 0)
    for d in days:
        for product, cents in d.by_product.items():
            totals[product] = totals.get(product, 0) + cents
    return RevenueResponse(
        start=start,
        end=end,
        days=days,
        totals_by_product=totals,
        total_cents=sum(totals.values()),
    )


async def markets(wh: Warehouse, start: dt.date, end: dt.date, limit: int) -> MarketsResponse:
    rows = await run(warehouse.top_markets, wh, start, end, limit)
    return MarketsResponse(
        start=start,
        end=end,
        markets=[
            MarketRow(
                ticker=str(r[0]),
                contracts=int(r[1]),
                volume_cents=int(r[2]),
                trades=int(r[3]),
                traders=int(r[4]),
                fees_cents=int(r[5]),
            )
            for r in rows
        ],
    )
