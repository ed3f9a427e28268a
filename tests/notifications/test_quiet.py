"""Quiet hours in the customer's zone (pure)."""

from __future__ import annotations

import datetime as dt

from pull.notifications.quiet import seconds_until_allowed, valid_zone


def _at(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso)


def test_over_midnight_in_local_time() -> None:
    start, end = dt.time(22), dt.time(7)
    ny = "America/New_York"
    # 03:00 UTC = 22:00 in New York (EST, UTC-5): quiet for 9 hours
    assert (
        seconds_until_allowed(_at("2026-01-15T03:00:00+00:00"), time_zone=ny, start=start, end=end)
        == 9 * 3600
    )
    # 02:59 UTC = 21:59 local: not quiet
    assert (
        seconds_until_allowed(_at("2026-01-15T02:59:00+00:00"), time_zone=ny, start=start, end=end)
        == 0
    )
    # 11:30 UTC = 06:30 local: 30 minutes left
    assert (
        seconds_until_allowed(_at("2026-01-15T11:30:00+00:00"), time_zone=ny, start=start, end=end)
        == 1800
    )
    # 12:00 UTC = 07:00 local: over
    assert (
        seconds_until_allowed(_at("2026-01-15T12:00:00+00:00"), time_zone=ny, start=start, end=end)
        == 0
    )


def test_same_day_window_and_none() -> None:
    now = _at("2026-06-01T12:30:00+00:00")
    assert seconds_until_allowed(now, time_zone="UTC", start=dt.time(12), end=dt.time(13)) == 1800
    assert seconds_until_allowed(now, time_zone="UTC", start=None, end=None) == 0


def test_zone_names() -> None:
    assert valid_zone("Europe/Paris") and valid_zone("UTC")
    assert not valid_zone("Mars/Olympus") and not valid_zone("../etc/passwd")
