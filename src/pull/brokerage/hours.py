"""Market hours from a real exchange calendar (exchange_calendars' XNYS: NYSE sessions,
holidays and early closes); crypto trades around the clock."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@lru_cache(maxsize=1)
def _nyse() -> Any:
    # imported on first use: pandas and the calendar cost seconds at process start
    import exchange_calendars as xcals

    return xcals.get_calendar("XNYS")


def _ts(at: dt.datetime) -> pd.Timestamp:
    import pandas as pd

    return pd.Timestamp(at.astimezone(dt.UTC)).floor("min")


def equities_open(at: dt.datetime) -> bool:
    """Is the US equity market in its regular session at `at`?"""
    cal = _nyse()
    ts = _ts(at)
    if ts < cal.first_minute or ts > cal.last_minute:
        return False
    return bool(cal.is_open_on_minute(ts))


def next_open(at: dt.datetime) -> dt.datetime | None:
    cal = _nyse()
    ts = _ts(at)
    if ts < cal.first_minute or ts >= cal.last_minute:
        return None
    value: pd.Timestamp = cal.next_open(ts)
    out: dt.datetime = value.to_pydatetime()
    return out


def next_close(at: dt.datetime) -> dt.datetime | None:
    cal = _nyse()
    ts = _ts(at)
    if ts < cal.first_minute or ts >= cal.last_minute:
        return None
    value: pd.Timestamp = cal.next_close(ts)
    out: dt.datetime = value.to_pydatetime()
    return out


def is_open(asset_class: str, at: dt.datetime) -> bool:
    return asset_class == "crypto" or equities_open(at)
