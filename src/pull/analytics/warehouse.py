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
from pull.analytics.normalize import BUSINESS_EVENTS, COLUMNS, Identity, Row

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
        at = ingested_at.astimezone(dt.UTC).replace(tzinfo=None)
        wh.insert("events", [r.values(at) for r in rows], COLUMNS)


def insert_identities(
    wh: Warehouse, identities: Sequence[Identity], ingested_at: dt.datetime
) -> None:
    if not identities:
        return
    at = ingested_at.astimezone(dt.UTC).replace(tzinfo=None)
    wh.insert(
        "identities",
        [
            [i.anonymous_id, i.user_id, i.ts.astimezone(dt.UTC).replace(tzinfo=None), at]
            for i in identities
        ],
        ["anonymous_id", "user_id", "ts", "ingested_at"],
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
    """(day, DAU, WAU, MAU) for each day with activity: every (user, day) pair counts towards
    the 30 days that start on it, so one pass gives all three rolling windows."""
    return wh.rows(
        f"""
        SELECT day + off AS d,
            uniqExactIf(user_id, off = 0),
            uniqExactIf(user_id, off < 7),
            uniqExact(user_id)
        FROM (
            SELECT DISTINCT user_id, toDate(ts) AS day FROM {wh.database}.events FINAL
            WHERE user_id != ''
              AND toDate(ts) BETWEEN {{start:Date}} - 29 AND {{end:Date}}
        )
        ARRAY JOIN range(30) AS off
        WHERE d BETWEEN {{start:Date}} AND {{end:Date}}
        GROUP BY d ORDER BY d
        """,  # noqa: S608
        _range(start, end),
    )


def active_total(wh: Warehouse, start: dt.date, end: dt.date) -> int:
    rows = wh.rows(
        f"SELECT uniqExact(user_id) FROM {wh.database}.events FINAL "  # noqa: S608
        "WHERE user_id != '' AND toDate(ts) BETWEEN {start:Date} AND {end:Date}",
        _range(start, end),
    )
    return int(rows[0][0])


def funnel_levels(
    wh: Warehouse, start: dt.date, end: dt.date, window_seconds: int
) -> list[tuple[Any, ...]]:
    """(level, users): how many users got exactly `level` steps into FUNNEL_STEPS, in order,
    within `window_seconds` of their sign-up (windowFunnel)."""
    conds = ", ".join(f"event = '{s}'" for s in FUNNEL_STEPS)
    steps_in = "(" + ", ".join(f"'{s}'" for s in FUNNEL_STEPS) + ")"
    window_ms = int(window_seconds) * 1000
    return wh.rows(
        f"""
        SELECT level, count() FROM (
            SELECT user_id,
                windowFunnel({window_ms})(toUInt64(toUnixTimestamp64Milli(ts)), {conds}) AS level
            FROM {wh.database}.events FINAL
            WHERE event IN {steps_in} AND {SERVER} AND user_id != ''
              AND toDate(ts) BETWEEN {{start:Date}} AND {{end:Date}}
            GROUP BY user_id
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
        f"toRelativeWeekNum(e.ts) - toRelativeWeekNum(c.cohort) = {k}"
        for k in range(int(weeks) + 1)
    )
    db = wh.database
    return wh.rows(
        f"""
        WITH cohorts AS (
            SELECT user_id, toMonday(min(ts)) AS cohort FROM {db}.events FINAL
            WHERE event = 'signed_up' AND {SERVER}
              AND toDate(ts) BETWEEN {{start:Date}} AND {{end:Date}}
            GROUP BY user_id
        )
        SELECT cohort, count() AS users, sumForEach(r) AS retained FROM (
            SELECT e.user_id, c.cohort AS cohort, retention({conds}) AS r
            FROM (
                SELECT user_id, ts FROM {db}.events FINAL
                WHERE user_id != '' AND toDate(ts) >= {{start:Date}} - 7
            ) AS e
            INNER JOIN cohorts AS c ON e.user_id = c.user_id
            GROUP BY e.user_id, c.cohort
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
