"""Quiet hours: local wall-clock windows (possibly over midnight) in the customer's zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


def valid_zone(name: str) -> bool:
    if name == "UTC":
        return True
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return name in available_timezones()


def seconds_until_allowed(
    now: dt.datetime, *, time_zone: str, start: dt.time | None, end: dt.time | None
) -> float:
    """0 outside quiet hours; else the seconds until they end (the local `end` time).

    Computed on local dates, so a window keeps its wall-clock meaning across DST changes."""
    if start is None or end is None:
        return 0.0
    zone = ZoneInfo(time_zone)
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    if start < end:
        quiet = start <= t < end
        end_date = local.date()
    else:  # over midnight: 22:00-07:00
        quiet = t >= start or t < end
        end_date = local.date() + dt.timedelta(days=1) if t >= start else local.date()
    if not quiet:
        return 0.0
    until = dt.datetime.combine(end_date, end, tzinfo=zone)
    return max(0.0, (until - now).total_seconds())
