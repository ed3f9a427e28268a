"""All ClickHouse SQL of the analytics module: inserts and the dashboard queries.

Every read of `events` uses FINAL, so rows of the same (event, event_id) count once even
before ClickHouse has merged them away. Business facts are counted only from server-side
sources (`outbox`, `backfill`): a client cannot `track` a sign-up or a deposit into a
dashboard.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pull.analytics import chschema
from pull.analytics.client import Warehouse, run
from pull.analytics.normalize import (
    BUSINESS_EVENTS,
    COLUMNS,
    TYPES,
    EventColumns,
    Row,
    epoch_ms,
)

SERVER = "source IN ('outbox', 'backfill')"
FUNNEL_STEPS = (
    "signed_up",
    "email_verified",
    "phone_verified",
    "kyc_approved",
    "deposit_settled",
    "trade",
)
_EVENTS_IN = "(" + ", ".join(f"'{e}'" for e in BUSINESS_EVENTS) + ")"


async def ensure_schema(wh: Warehouse) -> list[int]:
    applied: list[int] = await run(chschema.migrate, wh)
    return applied


def insert_rows(wh: Warehouse, rows: Sequence[Row], ingested_at: dt.datetime) -> None:
    if rows:
        batch = EventColumns()
        for r in rows:
            batch.add_row(r)
        insert_columns(wh, batch, ingested_at)


def insert_columns(wh: Warehouse, batch: EventColumns, ingested_at: dt.datetime) -> None:
    """One column-oriented insert of a batch into `events` (the materialized views run on it)."""
    if len(batch):
        wh.insert(
            "events",
            batch.columns(epoch_ms(ingested_at)),
            COLUMNS,
            column_oriented=True,
            types=TYPES,
        )


def truncate(wh: Warehouse) -> None:
    for table in chschema.TABLES:
        wh.command(f"TRUNCATE TABLE IF EXISTS {wh.database}.{table}")


def table_dump(wh: Warehouse, table: str) -> list[tuple[Any, ...]]:
    """Every row of a table (the PII test reads them all)."""
    if table not in chschema.TABLES:
        raise ValueError(table)
    return wh.rows(f"SELECT * FROM {wh.database}.{table}")  # noqa: S608 - known table name


def count_events(wh: Warehouse, *, final: bool = True) -> int:
    f = " FINAL" if final else ""
    return int(wh.rows(f"SELECT count() FROM {wh.database}.events{f}")[0][0])  # noqa: S608


def _range(start: dt.date, end: dt.date) -> dict[str, Any]:
    return {"start": start, "end": end}


def daily_facts(wh: Warehouse, start: dt.date, end: dt.date) -> list[tuple[Any, ...]]:
    return wh.rows(
        f"""
        SELECT toDate(ts) AS day,
            countIf(event = 'signed_up'),
            countIf(event = 'email_verified'),
            countIf(event = 'phone_verified'),
            countIf(event = 'kyc_approved'),
            countIf(event = 'deposit_settled'),
            sumIf(amount_cents, event = 'deposit_settled'),
            countIf(event = 'withdrawal_completed'),
            sumIf(amount_cents, event = 'withdrawal_completed'),
            countIf(event = 'trade' AND role = 'taker'),
            sumIf(contracts, event = 'trade' AND role = 'taker'),
            sumIf(amount_cents, event = 'trade' AND role = 'taker'),
            sumIf(fee_cents, event = 'trade'),
            sumIf(fee_cents, event = 'withdrawal_completed')
        FROM {wh.database}.events FINAL
        WHERE event IN {_EVENTS_IN} AND {SERVER}
          AND toDate(ts) BETWEEN {{start:Date}} AND {{end:Date}}
        GROUP BY day ORDER BY day
        """,  # noqa: S608 - database name from settings (validated), rest constant
        _range(start, end),
    )


def active_users(wh: Warehouse, start: dt.date, end: dt.date) -> list[tuple[Any, ...]]:
    """(day, DAU, WAU, MAU) for every day of the range, from the user_days rollup: one
    uniqExact state per day, merged over 1-, 7- and 30-day windows."""
    days = (end - start).days + 30
    return wh.rows(
        f"""
        SELECT d, dau, wau, mau FROM (
            SELECT d,
                uniqExactMerge(s) OVER (ORDER BY d RANGE BETWEEN CURRENT ROW AND CURRENT ROW)
                    AS dau,
                uniqExactMerge(s) OVER (ORDER BY d RANGE BETWEEN 6 PRECEDING AND CURRENT ROW)
                    AS wau,
                uniqExactMerge(s) OVER (ORDER BY d RANGE BETWEEN 29 PRECEDING AND CURRENT ROW)
                    AS mau
            FROM (
                SELECT d, uniqExactStateIf(user_id, user_id != '') AS s FROM (
                    SELECT day AS d, user_id FROM {wh.database}.user_days
                    WHERE day BETWEEN {{start:Date}} - 29 AND {{end:Date}}
                    UNION ALL
                    SELECT toDate({{start:Date}} - 29 + number) AS d, '' AS user_id
                    FROM numbers({int(days)})
                )
                GROUP BY d
            )
        )
        WHERE d BETWEEN {{start:Date}} AND {{end:Date}}
        ORDER BY d
        """,  # noqa: S608
        _range(start, end),
    )


def active_total(wh: Warehouse, start: dt.date, end: dt.date) -> int:
    rows = wh.rows(
        f"SELECT uniqExact(user_id) FROM {wh.database}.user_days "  # noqa: S608
        "WHERE day BETWEEN {start:Date} AND {end:Date}",
        _range(start, end),
    )
    return int(rows[0][0])


def funnel_levels(
    wh: Warehouse, start: dt.date, end: dt.date, window_seconds: int
) -> list[tuple[Any, ...]]:
    """(level, users): of the users who signed up in the range, how many got exactly `level`
    steps into FUNNEL_STEPS, in order, within `window_seconds` of signing up.

    ClickHouse's windowFunnel runs over each user's row of `user_funnel` (the first time of
    every step, kept by a materialized view; FINAL merges a user's rows): arrayReduce feeds it
    the steps reached as (time, step) events, so no GROUP BY over the users is needed."""
    window_ms = int(window_seconds) * 1000
    cols = [c for _, c in chschema.FUNNEL_COLUMNS]
    events = (
        "arrayFilter(x -> isNotNull(x.2), ["
        + ", ".join(f"({k}, {c})" for k, c in enumerate(cols, start=1))
        + "])"
    )
    conds = ", ".join(f"arrayMap(x -> x.1 = {k}, ev)" for k in range(1, len(cols) + 1))
    return wh.rows(
        f"""
        SELECT level, count() FROM (
            SELECT arrayReduce(
                'windowFunnel({window_ms})',
                arrayMap(x -> toUInt64(toUnixTimestamp64Milli(assumeNotNull(x.2))), ev),
                {conds}
            ) AS level
            FROM (
                SELECT {events} AS ev FROM {wh.database}.user_funnel FINAL
                WHERE toDate(signed_up) BETWEEN {{start:Date}} AND {{end:Date}}
            )
        )
        WHERE level > 0
        GROUP BY level ORDER BY level
        """,  # noqa: S608 - integers and constants only
        _range(start, end),
    )


def retention_cohorts(
    wh: Warehouse, start: dt.date, end: dt.date, weeks: int
) -> list[tuple[Any, ...]]:
    """(cohort Monday, users, [retained in week 0..weeks]) with the retention function:
    element k counts users of the cohort active in week k after the week they signed up."""
    conds = ", ".join(
        f"toRelativeWeekNum(d.day) - toRelativeWeekNum(c.cohort) = {k}"
        for k in range(int(weeks) + 1)
    )
    db = wh.database
    return wh.rows(
        f"""
        WITH cohorts AS (
            SELECT user_id, toMonday(min(first_ts)) AS cohort FROM {db}.user_firsts
            WHERE step = 'signed_up'
            GROUP BY user_id
            HAVING toDate(min(first_ts)) BETWEEN {{start:Date}} AND {{end:Date}}
        )
        SELECT cohort, count() AS users, sumForEach(r) AS retained FROM (
            SELECT d.user_id, c.cohort AS cohort, retention({conds}) AS r
            FROM {db}.user_days AS d
            INNER JOIN cohorts AS c ON d.user_id = c.user_id
            WHERE d.day >= {{start:Date}} - 7
            GROUP BY d.user_id, c.cohort
        )
        GROUP BY cohort ORDER BY cohort
        """,  # noqa: S608
        _range(start, end),
    )


def revenue_by_day(wh: Warehouse, start: dt.date, end: dt.date) -> list[tuple[Any, ...]]:
    return wh.rows(
        f"""
        SELECT toDate(ts) AS day, product, sum(fee_cents), count()
        FROM {wh.database}.events FINAL
        WHERE event IN ('trade', 'withdrawal_completed') AND {SERVER} AND fee_cents != 0
          AND toDate(ts) BETWEEN {{start:Date}} AND {{end:Date}}
        GROUP BY day, product ORDER BY day, product
        """,  # noqa: S608
        _range(start, end),
    )


def top_markets(wh: Warehouse, start: dt.date, end: dt.date, limit: int) -> list[tuple[Any, ...]]:
    return wh.rows(
        f"""
        SELECT market,
            sumIf(contracts, role = 'taker') AS contracts,
            sumIf(amount_cents, role = 'taker') AS volume,
            countIf(role = 'taker') AS trades,
            uniqExact(user_id) AS traders,
            sum(fee_cents) AS fees
        FROM {wh.database}.events FINAL
        WHERE event = 'trade' AND {SERVER} AND user_id != ''
          AND toDate(ts) BETWEEN {{start:Date}} AND {{end:Date}}
        GROUP BY market ORDER BY volume DESC, contracts DESC, market LIMIT {int(limit)}
        """,  # noqa: S608
        _range(start, end),
    )
