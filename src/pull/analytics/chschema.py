"""Versioned ClickHouse schema of the analytics database, applied by `pull migrate`.

Each migration is a version number, a name and its statements (`{db}` is the database). The
applied versions are rows of `{db}.schema_migrations`; `migrate()` applies the missing ones
in order. Statements are idempotent (IF NOT EXISTS), so a migration cut short by a crash is
simply applied again. Never edit a released migration: add the next one.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pull.analytics.client import Warehouse

log = logging.getLogger("pull.analytics")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


_FIRSTS_SELECT = (
    "SELECT user_id, event AS step, min(ts) AS first_ts FROM {db}.events "
    "WHERE event IN ('signed_up', 'email_verified', 'phone_verified', 'kyc_approved', "
    "'deposit_settled', 'trade') AND source IN ('outbox', 'backfill') AND user_id != '' "
    "GROUP BY user_id, step"
)
_DAYS_SELECT = "SELECT user_id, toDate(ts) AS day FROM {db}.events WHERE user_id != ''"
# One row per user (after merges) with the first time of each funnel step, NULL until reached.
FUNNEL_COLUMNS = (
    ("signed_up", "signed_up"),
    ("email_verified", "email_verified"),
    ("phone_verified", "phone_verified"),
    ("kyc_approved", "kyc_approved"),
    ("deposit_settled", "deposit_settled"),
    ("trade", "first_trade"),
)
_FUNNEL_SELECT = (
    "SELECT toUUIDOrZero(uid) AS user_id, "  # noqa: S608 - constants only
    + ", ".join(f"minIfOrNull(ts, event = '{e}') AS {c}" for e, c in FUNNEL_COLUMNS)
    + " FROM (SELECT user_id AS uid, event, ts FROM {db}.events WHERE event IN ("
    + ", ".join(f"'{e}'" for e, _ in FUNNEL_COLUMNS)
    + ") AND source IN ('outbox', 'backfill') AND user_id != '') GROUP BY uid"
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events",
        (
            # Every captured event, one row per event id. ReplacingMergeTree collapses rows of
            # the same (event, event_id) when parts merge and at query time with FINAL; `ver`
            # keeps the earliest occurrence (a replay is identical anyway).
            """
            CREATE TABLE IF NOT EXISTS {db}.events (
                event_id String,
                event LowCardinality(String),
                source LowCardinality(String),
                topic LowCardinality(String),
                user_id String,
                anonymous_id String,
                ts DateTime64(3, 'UTC'),
                amount_cents Int64,
                fee_cents Int64,
                contracts Int64,
                product LowCardinality(String),
                market String,
                role LowCardinality(String),
                properties String,
                ingested_at DateTime64(3, 'UTC'),
                ver UInt64
            )
            ENGINE = ReplacingMergeTree(ver)
            PARTITION BY toYYYYMM(ts)
            ORDER BY (event, event_id)
            """,
        ),
    ),
    Migration(
        2,
        "identities",
        (
            # identify calls: which anonymous id became which user (latest wins).
            """
            CREATE TABLE IF NOT EXISTS {db}.identities (
                anonymous_id String,
                user_id String,
                ts DateTime64(3, 'UTC'),
                ingested_at DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree(ingested_at)
            ORDER BY anonymous_id
            """,
        ),
    ),
    Migration(
        3,
        "rollups",
        (
            # Rollups kept by materialized views on every insert into events. Both are
            # duplicate-proof without FINAL: a (user, day) pair is a set member, and the first
            # time of a funnel step is a min(), so a replayed batch changes neither.
            """
            CREATE TABLE IF NOT EXISTS {db}.user_days (user_id String, day Date)
            ENGINE = ReplacingMergeTree ORDER BY (day, user_id)
            """,
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.user_days_mv TO {db}.user_days AS "
            + _DAYS_SELECT,
            """
            CREATE TABLE IF NOT EXISTS {db}.user_firsts (
                user_id String,
                step LowCardinality(String),
                first_ts SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
            )
            ENGINE = AggregatingMergeTree ORDER BY (step, user_id)
            """,
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.user_firsts_mv TO {db}.user_firsts AS "
            + _FIRSTS_SELECT,
            # what was in events before the views existed (twice is harmless, see above)
            "INSERT INTO {db}.user_days " + _DAYS_SELECT,
            "INSERT INTO {db}.user_firsts " + _FIRSTS_SELECT,
        ),
    ),
    Migration(
        4,
        "user_funnel",
        (
            # The funnel's table, ordered for it: one row per user (UUID, 16 bytes) holding the
            # first time of every step; min() merges make it duplicate-proof like user_firsts.
            # The funnel reads it with FINAL and runs windowFunnel over each row's six times
            # (arrayReduce), so it neither groups a million String ids nor sorts steps.
            "CREATE TABLE IF NOT EXISTS {db}.user_funnel (user_id UUID, "
            + ", ".join(
                f"{c} SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))"
                for _, c in FUNNEL_COLUMNS
            )
            + ") ENGINE = AggregatingMergeTree ORDER BY user_id",
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.user_funnel_mv TO {db}.user_funnel AS "
            + _FUNNEL_SELECT,
            "INSERT INTO {db}.user_funnel " + _FUNNEL_SELECT,
        ),
    ),
)


TABLES = ("events", "identities", "user_days", "user_firsts", "user_funnel")


def applied_versions(wh: Warehouse) -> set[int]:
    rows = wh.rows(f"SELECT version FROM {wh.database}.schema_migrations")  # noqa: S608
    return {int(r[0]) for r in rows}


def migrate(wh: Warehouse) -> list[int]:
    """Create the database and apply the migrations it lacks; returns the versions applied."""
    db = wh.database
    wh.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    wh.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime('UTC')) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = applied_versions(wh)
    applied: list[int] = []
    for m in MIGRATIONS:
        if m.version in done:
            continue
        for statement in m.statements:
            wh.command(statement.format(db=db))
        wh.insert(
            "schema_migrations",
            [[m.version, m.name, dt.datetime.now(dt.UTC).replace(tzinfo=None)]],
            ["version", "name", "applied_at"],
        )
        log.info("clickhouse migration applied", extra={"version": m.version, "name": m.name})
        applied.append(m.version)
    return applied


def head() -> int:
    return MIGRATIONS[-1].version
