"""The funnel over `user_funnel` (one row per user, windowFunnel through arrayReduce) counts
what windowFunnel over every (user, step, first time) row grouped by user counts, for random
step times: out of order, simultaneous, beyond the window, repeated, replayed, business facts
only from the server's sources."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pull.analytics import warehouse
from pull.analytics.client import Warehouse
from pull.analytics.normalize import Row

T0 = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
START, END = dt.date(2026, 10, 1), dt.date(2026, 10, 31)


def grouped_funnel(wh: Warehouse, window_seconds: int) -> list[tuple[Any, ...]]:
    """The reference: windowFunnel per user over the user_firsts rows (the previous query)."""
    conds = ", ".join(f"step = '{s}'" for s in warehouse.FUNNEL_STEPS)
    return wh.rows(
        f"""
        SELECT level, count() FROM (
            SELECT user_id,
                windowFunnel({window_seconds * 1000})(
                    toUInt64(toUnixTimestamp64Milli(t)), {conds}) AS level
            FROM (
                SELECT user_id, step, min(first_ts) AS t FROM {wh.database}.user_firsts
                GROUP BY user_id, step
            )
            GROUP BY user_id
            HAVING toDate(minIf(t, step = 'signed_up')) BETWEEN {{start:Date}} AND {{end:Date}}
        )
        WHERE level > 0 GROUP BY level ORDER BY level
        """,
        {"start": START, "end": END},
    )


step = st.tuples(
    st.sampled_from(warehouse.FUNNEL_STEPS),
    st.integers(min_value=-3 * 86400, max_value=45 * 86400),  # seconds after T0
    st.sampled_from(("outbox", "outbox", "backfill", "track")),
)
users = st.lists(st.lists(step, max_size=9), min_size=1, max_size=12)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(people=users, window_days=st.sampled_from((1, 7, 30)), replay=st.booleans())
def test_the_per_user_funnel_counts_what_windowfunnel_over_all_steps_counts(
    wh: Warehouse, people: list[list[tuple[str, int, str]]], window_days: int, replay: bool
) -> None:
    warehouse.truncate(wh)
    rows: list[Row] = []
    for person in people:
        user = str(uuid.uuid4())
        for n, (name, seconds, source) in enumerate(person):
            rows.append(
                Row(
                    event_id=f"{name}:{user}:{n}",
                    event=name,
                    source=source,
                    topic="test",
                    ts=T0 + dt.timedelta(seconds=seconds, milliseconds=n),
                    user_id=user,
                )
            )
    at = dt.datetime.now(dt.UTC)
    warehouse.insert_rows(wh, rows, at)
    if replay:
        warehouse.insert_rows(wh, rows[: len(rows) // 2], at)
    window = window_days * 86400
    assert warehouse.funnel_levels(wh, START, END, window) == grouped_funnel(wh, window)
