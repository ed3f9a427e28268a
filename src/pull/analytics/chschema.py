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


# --- migration 5: ClickHouse turns outbox and inbox rows into `events` rows -----------------
# The ingester hands ClickHouse PostgreSQL's COPY output as it is (TabSeparated) into two Null
# tables; materialized views parse the JSON and write the raw row and the business facts
# (the rules of normalize.from_outbox, which tests check these views against).
OUTBOX_IN_COLUMNS = ("id", "ts_ms", "topic_hex", "payload")
INBOX_IN_COLUMNS = ("id", "message_id", "kind", "payload", "received_ms")


# Each JSON document is parsed once: its top-level fields become a Map of their raw JSON
# texts (a missing field is ''), and the fields are read from those short texts.
_FIELDS = "CAST(JSONExtractKeysAndValuesRaw({}), 'Map(String, String)')"


def _text(raw: str) -> str:
    """normalize._text in SQL, of a field's raw JSON: a string as it is, a non-zero integer as
    its digits, else ''."""
    return (
        f"multiIf(startsWith({raw}, '\"'), JSONExtractString({raw}), "
        f"match({raw}, '^-?[0-9]+$') AND {raw} != '0', {raw}, '')"
    )


def _int(raw: str) -> str:
    """normalize._int in SQL, of a field's raw JSON: an integer, a boolean as 0/1, a string
    of digits, else 0."""
    return (
        f"multiIf(match({raw}, '^-?[0-9]+$'), toInt64OrZero({raw}), {raw} = 'true', toInt64(1), "
        f"startsWith({raw}, '\"') AND match(JSONExtractString({raw}), '^-?[0-9]{{{{1,18}}}}$'), "
        f"toInt64OrZero(JSONExtractString({raw})), toInt64(0))"
    )


def _row(
    event_id: str,
    event: str,
    user: str,
    amount: str = "0",
    fee: str = "0",
    contracts: str = "0",
    product: str = "''",
    market: str = "''",
    role: str = "''",
    properties: str = "'{{}}'",
) -> str:
    """One `events` row of the outbox view as a tuple (the view arrayJoins a list of them)."""
    return (
        f"tuple({event_id}, toString({event}), {user}, toInt64({amount}), toInt64({fee}), "
        f"toInt64({contracts}), toString({product}), {market}, toString({role}), {properties})"
    )


_IDENTITY_NAME = (
    "multiIf(topic = 'identity.user_registered', 'signed_up', "
    "topic = 'identity.email_verified', 'email_verified', 'phone_verified')"
)
_KYC = (
    "user != '' AND (topic = 'kyc.approved' OR (topic = 'kyc.tier_changed' "
    "AND m['from'] = '\"none\"' AND m['to'] NOT IN ('', 'null', '\"none\"')))"
)
# per fill: (its fields, whether it is an object, its index)
_FILL_COUNT = _int("fm['count']")
_FILL_PRICE = _int("fm['yes_price']")
_TRADE_COMMON = (
    "concat('{{\"side\": ', toJSONString(side), ', \"action\": ', "
    "if(mapContains(m, 'action'), m['action'], 'null'), "
    f"', \"yes_price\": ', toString({_FILL_PRICE}), '}}}}')"
)
_TRADE_ROWS = (
    "arrayFlatten(arrayMap((fm, obj, n) -> if(obj, ["
    + _row(
        "concat('trade:', toString(id), ':', toString(n), ':taker')", "'trade'", "user",
        amount=f"({_FILL_COUNT}) * if(side = 'yes', {_FILL_PRICE}, 100 - {_FILL_PRICE})",
        fee=_int("fm['taker_fee']"), contracts=_FILL_COUNT, product="'exchange'",
        market="ticker", role="'taker'", properties=_TRADE_COMMON,
    ) + ", " + _row(
        "concat('trade:', toString(id), ':', toString(n), ':maker')", "'trade'",
        _text("fm['maker_user_id']"), fee=_int("fm['maker_fee']"), contracts=_FILL_COUNT,
        product="'exchange'", market="ticker", role="'maker'", properties=_TRADE_COMMON,
    ) + "], []), "
    "arrayMap(f -> if(startsWith(f, '{{'), " + _FIELDS.format("f") + ", map()), fills), "
    "arrayMap(f -> startsWith(f, '{{'), fills), range(length(fills))))"
)  # fmt: skip
_FACTS = (
    "multiIf("
    "topic IN ('identity.user_registered', 'identity.email_verified', 'identity.phone_verified')"
    " AND user != '', [" + _row(f"concat({_IDENTITY_NAME}, ':', user)", _IDENTITY_NAME, "user")
    + "], " + _KYC + ", [" + _row(
        "concat('kyc_approved:', user)", "'kyc_approved'", "user",
        properties="concat('{{\"tier\": ', toJSONString(if(" + _text("m['tier']") + " != '', "
        + _text("m['tier']") + ", " + _text("m['to']") + ")), '}}')",
    ) + "], topic = 'funding.deposit_settled' AND " + _text("m['deposit_id']") + " != '', ["
    + _row(
        "concat('deposit_settled:', " + _text("m['deposit_id']") + ")", "'deposit_settled'",
        "user", amount=_int("m['amount']"), product="'funding'",
    ) + "], topic = 'funding.withdrawal_completed' AND " + _text("m['withdrawal_id']")
    + " != '', [" + _row(
        "concat('withdrawal_completed:', " + _text("m['withdrawal_id']") + ")",
        "'withdrawal_completed'", "user", amount=_int("m['amount']"), fee=_int("m['fee']"),
        product="'funding'",
    ) + "], topic = 'exchange.trade', " + _TRADE_ROWS + ", [])"
)  # fmt: skip
_OUTBOX_VIEW = (
    "SELECT r.1 AS event_id, r.2 AS event, 'outbox' AS source, topic, r.3 AS user_id, "  # noqa: S608 - constants only
    "'' AS anonymous_id, fromUnixTimestamp64Milli(ts_ms, 'UTC') AS ts, r.4 AS amount_cents, "
    "r.5 AS fee_cents, r.6 AS contracts, r.7 AS product, r.8 AS market, r.9 AS role, "
    "r.10 AS properties, now64(3, 'UTC') AS ingested_at, "
    "toUInt64(4611686018427387904 - ts_ms) AS ver "
    "FROM (SELECT ts_ms, topic, arrayJoin(arrayConcat(["
    + _row("concat('outbox:', toString(id))", "topic", "user", properties="j")
    + "], " + _FACTS + ")) AS r FROM ("
    "SELECT id, ts_ms, topic, j, m, " + _text("m['user_id']") + " AS user, "
    + _text("m['ticker']") + " AS ticker, "
    "if(" + _text("m['side']") + " != '', " + _text("m['side']") + ", 'yes') AS side, "
    "if(topic = 'exchange.trade', JSONExtractArrayRaw(m['fills']), []) AS fills "
    "FROM (SELECT id, ts_ms, unhex(topic_hex) AS topic, "
    "if(startsWith(payload, '{{'), payload, concat('{{\"value\": ', payload, '}}')) AS j, "
    + _FIELDS.format("j") + " AS m FROM {db}.outbox_in)))"
)  # fmt: skip
_INBOX_SELECT = (
    "SELECT concat('m:', message_id) AS event_id, "  # noqa: S608 - constants only
    "if(kind = 'identify', 'identify', " + _text("m['event']") + ") AS event, "
    "if(kind = 'identify', 'identify', 'track') AS source, source AS topic, "
    + _text("m['user_id']") + " AS user_id, " + _text("m['anonymous_id']") + " AS anonymous_id, "
    "coalesce(parseDateTime64BestEffortOrNull(JSONExtractString(m['timestamp']), 3, 'UTC'), "
    "fromUnixTimestamp64Milli(received_ms, 'UTC')) AS ts, "
    "toInt64(0) AS amount_cents, toInt64(0) AS fee_cents, toInt64(0) AS contracts, "
    "'' AS product, '' AS market, '' AS role, "
    "if(startsWith(m[if(kind = 'identify', 'traits', 'properties')], '{{'), "
    "m[if(kind = 'identify', 'traits', 'properties')], '{{}}') AS properties, "
    "now64(3, 'UTC') AS ingested_at, "
    "toUInt64(4611686018427387904 - toUnixTimestamp64Milli(ts)) AS ver, kind "
    "FROM (SELECT *, " + _FIELDS.format("payload") + " AS m FROM {db}.inbox_in)"
)  # fmt: skip


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
    Migration(
        5,
        "ingest_views",
        (
            # what the ingester inserts: PostgreSQL's COPY output, nothing stored (Null)
            "CREATE TABLE IF NOT EXISTS {db}.outbox_in (id UInt64, ts_ms Int64, "
            "topic_hex String, payload String) ENGINE = Null",
            "CREATE TABLE IF NOT EXISTS {db}.inbox_in (id UInt64, message_id String, "
            "kind String, payload String, received_ms Int64) ENGINE = Null",
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.outbox_in_mv TO {db}.events AS "
            + _OUTBOX_VIEW,
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.inbox_in_mv TO {db}.events AS "  # noqa: S608
            "SELECT * EXCEPT kind FROM (" + _INBOX_SELECT + ")",
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.inbox_identities_mv TO {db}.identities "  # noqa: S608
            "AS SELECT anonymous_id, user_id, ts, ingested_at FROM (" + _INBOX_SELECT + ") "
            "WHERE kind = 'identify' AND user_id != '' AND anonymous_id != ''",
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
