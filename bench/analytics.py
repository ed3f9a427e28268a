"""Analytics benchmark: ingest events/s into ClickHouse and the dashboard queries over 10M events.

Run: `uv run python -m bench.analytics` (`--events N` for the query part, default 10 million;
`--ingest-only` to skip it). Everything runs on chDB in this process (the embedded default; a
server would be measured the same way with CLICKHOUSE_URL) and one embedded PostgreSQL.

"Ingest" is the path from an accepted event (committed in PostgreSQL: an outbox row, or a
client event in `analytics_inbox`) to its rows in ClickHouse, through the real `Ingestor`:
- outbox and inbox from PostgreSQL: wall events/s, events per CPU-second of this process
  (Python and chDB's threads), and with the PostgreSQL server's CPU added;
- from memory (no PostgreSQL): the build of the columns and the insert, each in CPU µs/event;
- insert-only baselines of the same run and rows: the column-oriented insert alone, the
  row-oriented insert (the previous format) and the engine's own `INSERT ... SELECT`.
- queries: each dashboard query (warehouse.py) over N generated events of N/10 users, best of
  3, before and after `OPTIMIZE TABLE ... FINAL` (events, user_funnel); baseline `count()`
  and the previous funnel query; funnel CPU seconds.

Targets (issue 21): ingest >= 50,000 events/s batched; the funnel over 10M events < 1 s.
Results: bench/results/analytics.json and the "Analytics" section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.analytics_http import http_batch
from bench.common import ROOT, machine, write
from pull import devstack
from pull.analytics import chschema, warehouse
from pull.analytics.client import ConnectWarehouse, Target
from pull.analytics.ingest import Ingestor, send_outbox
from pull.analytics.normalize import epoch_ms
from pull.analytics.pii import clean_outbox_tsv
from pull.kit.db import make_engine, make_sessionmaker, utcnow
from pull.migrate import upgrade

INGEST_EVENTS = 200_000
BATCH = 20_000
TARGET_INGEST = 50_000
TARGET_FUNNEL_S = 1.0


def _id(n: int) -> str:
    """A deterministic random-looking UUID (PULL's ids are uuid4: few long digit runs)."""
    digest = hashlib.blake2b(n.to_bytes(16, "little"), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def _payload(i: int) -> tuple[str, dict[str, Any]]:
    user = _id(i % 50_000 + 1)
    kind = i % 4
    if kind == 0:
        return "exchange.trade", {
            "ticker": f"KX-{i % 200}",
            "order_id": _id(i + 10**9),
            "user_id": user,
            "side": "yes" if i % 2 else "no",
            "action": "buy",
            "fills": [
                {
                    "count": 1 + i % 9,
                    "yes_price": 1 + i % 98,
                    "maker_user_id": _id((i * 7) % 50_000 + 1),
                    "maker_order_id": _id(i + 2 * 10**9),
                    "taker_fee": i % 5,
                    "maker_fee": 0,
                }
            ],
        }
    if kind == 1:
        return "funding.deposit_settled", {
            "deposit_id": _id(i + 3 * 10**9),
            "user_id": user,
            "amount": 1_000 + i % 100_000,
        }
    if kind == 2:
        return "exchange.market", {"ticker": f"KX-{i % 200}", "status": "open"}
    return "kyc.tier_changed", {"user_id": user, "from": "none", "to": "basic"}


def _outbox(n: int) -> bytes:
    """What the ingester reads from PostgreSQL: COPY's text lines of (id, created_at in epoch
    ms, topic in hex, payload as jsonb::text prints it)."""
    now = epoch_ms(utcnow())
    out = []
    for i in range(n):
        topic, payload = _payload(i)
        text_ = json.dumps(payload, ensure_ascii=False).replace("\\", "\\\\")
        out.append(f"{i + 1}\t{now}\t{topic.encode().hex()}\t{text_}\n")
    return "".join(out).encode()


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _cpu_timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process: Python and chDB's threads)."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def _server_cpu(postmaster: int) -> float:
    """CPU seconds (user + system) used so far by the embedded PostgreSQL: the postmaster and
    its live children (the backends; the pool keeps ours open while it runs)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError, ValueError):
            continue
        if pid == postmaster or int(fields[1]) == postmaster:  # ppid, after state
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def ingest_in_memory(wh: ConnectWarehouse, n: int) -> dict[str, float]:
    """ClickHouse's side of ingest, split: the PII check of each batch's text, and the insert
    of the text (ClickHouse parses it; its views write the raw rows and the business facts);
    baselines of the same run: the same text parsed into a plain table (no views), and the
    engine's own `INSERT ... SELECT` of as many rows as ours wrote."""
    data = _outbox(n)
    cut = [0]
    for k in range(BATCH, n, BATCH):
        cut.append(data.index(b"\n%d\t" % (k + 1)) + 1)
    cut.append(len(data))
    batches = [data[cut[i] : cut[i + 1]] for i in range(len(cut) - 1)]
    warehouse.truncate(wh)

    def ours() -> None:
        for b in batches:
            send_outbox(wh, b)

    ours_s, ours_cpu = _cpu_timed(ours)
    rows_written = warehouse.count_events(wh, final=False)
    check_s, check_cpu = _cpu_timed(lambda: [clean_outbox_tsv(b) for b in batches])
    warehouse.truncate(wh)
    db = wh.database
    wh.command(
        f"CREATE TABLE IF NOT EXISTS {db}.bench_parse (id UInt64, ts_ms Int64, "
        "topic_hex String, payload String) ENGINE = MergeTree ORDER BY id"
    )

    def parse_only() -> None:
        for b in batches:
            wh.insert_raw("bench_parse", b, chschema.OUTBOX_IN_COLUMNS)

    parse_s, parse_cpu = _cpu_timed(parse_only)
    wh.command(f"DROP TABLE {db}.bench_parse")
    native_s, native_cpu = _cpu_timed(
        lambda: wh.command(
            f"INSERT INTO {db}.events (event_id, event, source, topic, user_id, ts, "  # noqa: S608
            "properties, ingested_at, ver) SELECT toString(number), 'x', 'bench', 'x', "
            "toString(number % 50000), now64(3), '{}', now64(3), number "
            f"FROM numbers({rows_written})"
        )
    )
    warehouse.truncate(wh)
    return {
        "events": n,
        "rows_written": rows_written,
        "ours_events_per_s": n / ours_s,
        "ours_events_per_cpu_s": n / ours_cpu,
        "check_us_per_event_cpu": check_cpu / n * 1e6,
        "check_seconds": check_s,
        "parse_only_events_per_s": n / parse_s,
        "parse_only_events_per_cpu_s": n / parse_cpu,
        "native_rows_per_s": rows_written / native_s,
        "native_rows_per_cpu_s": rows_written / native_cpu,
    }


async def ingest_from_postgres(wh: ConnectWarehouse, n: int, data: Path) -> dict[str, float]:
    """The whole ingest path, from events committed in PostgreSQL (the outbox, and client
    events accepted into the inbox) to rows in ClickHouse, through the real `Ingestor`."""
    port = devstack.free_port()
    pg, url = devstack.start_postgres(data, port)
    try:
        await asyncio.to_thread(upgrade, url)
        engine = make_engine(url, pool_size=2, max_overflow=0)
        maker = make_sessionmaker(engine)
        async with maker() as s, s.begin():
            for i in range(0, n, 20_000):
                chunk = range(i, min(i + 20_000, n))
                await s.execute(
                    text(
                        "INSERT INTO outbox_events (topic, key, payload, attempts) "
                        "SELECT t, 'k', p::jsonb, 0 FROM unnest(CAST(:t AS text[]), "
                        "CAST(:p AS text[])) AS u(t, p)"
                    ),
                    {
                        "t": [_payload(j)[0] for j in chunk],
                        "p": [json.dumps(_payload(j)[1]) for j in chunk],
                    },
                )
                await s.execute(
                    text(
                        "INSERT INTO analytics_inbox (message_id, kind, payload, received_at) "
                        "SELECT 'bench-' || m, 'track', p::jsonb, now() "
                        "FROM unnest(CAST(:m AS text[]), CAST(:p AS text[])) AS u(m, p)"
                    ),
                    {
                        "m": [str(j) for j in chunk],
                        "p": [
                            json.dumps(
                                {
                                    "user_id": _id(j % 50_000 + 1),
                                    "anonymous_id": "",
                                    "timestamp": None,
                                    "event": "Market Viewed",
                                    "properties": {"ticker": f"KX-{j % 200}", "source": "app"},
                                }
                            )
                            for j in chunk
                        ],
                    },
                )
        warehouse.truncate(wh)
        postmaster = pg.proc.pid
        ingestor = Ingestor(maker, wh, batch_size=BATCH, gap_seconds=0)

        async def timed(fn: Callable[[], Any]) -> tuple[float, float, float]:
            t, c, p = time.perf_counter(), time.process_time(), _server_cpu(postmaster)
            await fn()
            return time.perf_counter() - t, time.process_time() - c, _server_cpu(postmaster) - p

        async def outbox() -> None:
            while await ingestor.ingest_outbox():
                pass

        async def inbox() -> None:
            while await ingestor.ingest_inbox():
                pass

        out_s, out_cpu, out_pg = await timed(outbox)
        in_s, in_cpu, in_pg = await timed(inbox)
        # a replayed batch changes nothing
        before = warehouse.count_events(wh)
        async with maker() as s, s.begin():
            await s.execute(text("UPDATE analytics_cursors SET position = 0"))
        await Ingestor(maker, wh, batch_size=BATCH, gap_seconds=0).drain()
        assert warehouse.count_events(wh) == before
        await engine.dispose()
        return {
            "events": n,
            "outbox_events_per_s": n / out_s,
            "outbox_events_per_cpu_s": n / out_cpu,
            "outbox_events_per_cpu_s_with_postgres": n / (out_cpu + out_pg),
            "outbox_postgres_cpu_s": out_pg,
            "inbox_events_per_s": n / in_s,
            "inbox_events_per_cpu_s": n / in_cpu,
            "inbox_events_per_cpu_s_with_postgres": n / (in_cpu + in_pg),
            "inbox_postgres_cpu_s": in_pg,
        }
    finally:
        pg.stop()


def generate(wh: ConnectWarehouse, n: int) -> None:
    """n events of n/10 users: a sign-up each, then each funnel step with falling odds, the
    rest client `Market Viewed` events; spread over 8 weeks."""
    users = max(n // 10, 1)
    steps = (
        "['signed_up','email_verified','phone_verified','kyc_approved','deposit_settled','trade']"
    )
    odds = "[100, 90, 70, 50, 35, 25]"
    db = wh.database
    warehouse.truncate(wh)
    wh.command(
        f"""
        INSERT INTO {db}.events
        SELECT
            concat('g:', toString(number)) AS event_id,
            if(k < 6 AND cityHash64(u, k) % 100 < {odds}[k + 1], {steps}[k + 1], 'Market Viewed')
                AS event,
            if(event = 'Market Viewed', 'track', 'outbox') AS source,
            'bench' AS topic,
            toString(toUUID(concat('00000000-0000-0000-0000-', leftPad(toString(u), 12, '0'))))
                AS user_id,
            '' AS anonymous_id,
            toDateTime64('2026-10-01 00:00:00', 3, 'UTC')
                + toIntervalSecond(u % (56 * 86400) + k * 3600) AS ts,
            if(event = 'deposit_settled', 10000, if(event = 'trade', 500, 0)) AS amount_cents,
            if(event = 'trade', 7, 0) AS fee_cents,
            if(event = 'trade', 10, 0) AS contracts,
            if(event = 'trade', 'exchange', '') AS product,
            if(event = 'trade', concat('KX-', toString(u % 300)), '') AS market,
            if(event = 'trade', 'taker', '') AS role,
            '{{}}' AS properties,
            now64(3) AS ingested_at,
            number AS ver
        FROM (SELECT number, number % {users} AS u, intDiv(number, {users}) AS k
              FROM numbers({n}))
        """  # noqa: S608
    )


def best_of(fn: Callable[[], Any], runs: int = 3) -> float:
    return min(_timed(fn) for _ in range(runs))


def grouped_funnel(wh: ConnectWarehouse, start: dt.date, end: dt.date) -> list[tuple[Any, ...]]:
    """The funnel as it was before `user_funnel`: windowFunnel over the user_firsts rows,
    grouped by a million String user ids (kept as this run's baseline)."""
    conds = ", ".join(f"step = '{s}'" for s in warehouse.FUNNEL_STEPS)
    return wh.rows(
        f"""
        SELECT level, count() FROM (
            SELECT user_id,
                windowFunnel(2592000000)(toUInt64(toUnixTimestamp64Milli(t)), {conds}) AS level
            FROM (
                SELECT user_id, step, min(first_ts) AS t FROM {wh.database}.user_firsts
                GROUP BY user_id, step
            )
            GROUP BY user_id
            HAVING toDate(minIf(t, step = 'signed_up')) BETWEEN {{start:Date}} AND {{end:Date}}
        )
        WHERE level > 0 GROUP BY level ORDER BY level
        """,  # noqa: S608 - constants only
        {"start": start, "end": end},
    )


def funnel_cpu(wh: ConnectWarehouse) -> dict[str, float]:
    """CPU seconds of this process (Python and chDB's threads) per funnel query, best of 3:
    on a shared machine the wall clock mostly measures the other sessions."""
    start, end = dt.date(2026, 10, 1), dt.date(2026, 11, 30)
    return {
        "funnel (windowFunnel)": min(
            _cpu_timed(lambda: warehouse.funnel_levels(wh, start, end, 30 * 86400))[1]
            for _ in range(3)
        ),
        "baseline: previous funnel (windowFunnel grouped over user_firsts)": min(
            _cpu_timed(lambda: grouped_funnel(wh, start, end))[1] for _ in range(3)
        ),
    }


def queries(wh: ConnectWarehouse) -> dict[str, float]:
    start, end = dt.date(2026, 10, 1), dt.date(2026, 11, 30)
    db = wh.database
    return {
        "baseline: previous funnel (windowFunnel grouped over user_firsts)": best_of(
            lambda: grouped_funnel(wh, start, end)
        ),
        "baseline count()": best_of(lambda: wh.rows(f"SELECT count() FROM {db}.events")),  # noqa: S608
        "baseline count() FINAL": best_of(
            lambda: wh.rows(f"SELECT count() FROM {db}.events FINAL")  # noqa: S608
        ),
        "funnel (windowFunnel)": best_of(
            lambda: warehouse.funnel_levels(wh, start, end, 30 * 86400)
        ),
        "retention (8 weeks)": best_of(lambda: warehouse.retention_cohorts(wh, start, end, 8)),
        "overview: daily facts": best_of(lambda: warehouse.daily_facts(wh, start, end)),
        "overview: DAU/WAU/MAU": best_of(lambda: warehouse.active_users(wh, start, end)),
        "revenue": best_of(lambda: warehouse.revenue_by_day(wh, start, end)),
        "markets": best_of(lambda: warehouse.top_markets(wh, start, end, 10)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--ingest-events", type=int, default=INGEST_EVENTS)
    parser.add_argument("--ingest-only", action="store_true", help="skip the 10M-event queries")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite the doc section")
    parser.add_argument(
        "--http-events", type=int, default=0,
        help="also POST this many client events through a real `pull api` (end to end)",
    )  # fmt: skip
    args = parser.parse_args()
    load_before = os.getloadavg()
    data = Path(tempfile.mkdtemp(prefix="pull-bench-analytics-"))
    payload: dict[str, Any] = {}
    try:
        wh = ConnectWarehouse(Target(database="pull_analytics", chdb_path=str(data / "chdb")))
        chschema.migrate(wh)
        print("ingest from memory ...", flush=True)
        payload["ingest_memory"] = ingest_in_memory(wh, args.ingest_events)
        print(payload["ingest_memory"], flush=True)
        print("ingest from PostgreSQL (outbox, inbox) ...", flush=True)
        payload["ingest_postgres"] = asyncio.run(ingest_from_postgres(wh, args.ingest_events, data))
        print(payload["ingest_postgres"], flush=True)
        payload["load_average_after_ingest"] = os.getloadavg()
        if args.http_events:
            print("client events through HTTP (pull api) ...", flush=True)
            payload["ingest_http"] = http_batch(args.http_events)
            print(payload["ingest_http"], flush=True)
        if not args.ingest_only:
            payload.update(query_round(wh, args.events))
        wh.close()
    finally:
        shutil.rmtree(data, ignore_errors=True)
    payload.update(
        machine=machine(),
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
        query_events=0 if args.ingest_only else args.events,
    )
    path = write("analytics", payload)
    print(f"\nwritten to {path}")
    if not args.no_docs:
        print(f"and {update_docs(payload)}")


def query_round(wh: ConnectWarehouse, n: int) -> dict[str, Any]:
    print(f"generating {n:,} events ...", flush=True)
    gen_s = _timed(lambda: generate(wh, n))
    parts = int(
        wh.rows(
            "SELECT count() FROM system.parts WHERE database = 'pull_analytics' "
            "AND table = 'events' AND active"
        )[0][0]
    )
    fresh = queries(wh)
    print(fresh, flush=True)
    fresh_cpu = funnel_cpu(wh)
    print(fresh_cpu, flush=True)

    # what background merges reach: events and the funnel's table merged
    def optimize() -> None:
        for t in ("events", "user_funnel"):
            wh.command(f"OPTIMIZE TABLE pull_analytics.{t} FINAL")

    optimize_s = _timed(optimize)
    merged = queries(wh)
    print(merged, flush=True)
    cpu = funnel_cpu(wh)
    print(cpu, flush=True)
    start, end = dt.date(2026, 10, 1), dt.date(2026, 11, 30)
    funnel = warehouse.funnel_levels(wh, start, end, 2592000)
    previous = grouped_funnel(wh, start, end)
    assert funnel == previous, (funnel, previous)
    return {
        "generate_seconds": gen_s,
        "parts_before_optimize": parts,
        "optimize_seconds": optimize_s,
        "queries_fresh_s": fresh,
        "queries_merged_s": merged,
        "funnel_cpu_fresh_s": fresh_cpu,
        "funnel_cpu_s": cpu,
        "funnel_levels": [list(map(int, r)) for r in funnel],
    }


def update_docs(p: dict[str, Any]) -> Path:
    m, pg, host = p["ingest_memory"], p["ingest_postgres"], p["machine"]
    la = p["load_average_before"][0], p["load_average_after_ingest"][0]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    section = (
        "## Analytics (`bench/analytics.py`)\n\n"  # noqa: S608 - Markdown, not SQL
        f"`uv run python -m bench.analytics`: chDB in-process (the embedded default), "
        f"{host['cpus']} CPUs, Python {host['python']}, {host['date']}; load average "
        f"{la[0]:.1f} before the ingest and {la[1]:.1f} after it. Compare rows of the same "
        "run; the CPU-second columns are what one core does, whatever the load.\n\n"
        "**Ingest** = from an event committed in PostgreSQL (an outbox row, or a client event "
        "accepted into `analytics_inbox` by the track/identify/batch endpoints) to its rows in "
        "ClickHouse's `events` (and the materialized views' rollups), through the real "
        f"`Ingestor` in batches of {BATCH:,}; an outbox event of the mix writes "
        f"{m['rows_written'] / m['events']:.2f} rows (its raw row and its business facts). The "
        "HTTP acceptance of client events is an API request like any other and is not in "
        "these figures.\n\n"
        "| path | events/s | per CPU-second of this process | with PostgreSQL's CPU |\n"
        "|---|---:|---:|---:|\n"
        f"| outbox → ClickHouse ({pg['events']:,} events) | "
        f"{pg['outbox_events_per_s']:,.0f} | {pg['outbox_events_per_cpu_s']:,.0f} | "
        f"{pg['outbox_events_per_cpu_s_with_postgres']:,.0f} |\n"
        f"| inbox (client events) → ClickHouse | {pg['inbox_events_per_s']:,.0f} | "
        f"{pg['inbox_events_per_cpu_s']:,.0f} | "
        f"{pg['inbox_events_per_cpu_s_with_postgres']:,.0f} |\n"
        f"| outbox rows from memory → ClickHouse (no PostgreSQL) | "
        f"{m['ours_events_per_s']:,.0f} | {m['ours_events_per_cpu_s']:,.0f} | |\n\n"
        f"Where an event's CPU goes (from memory): the PII check of its batch's text "
        f"{m['check_us_per_event_cpu']:.2f} µs; the rest is ClickHouse parsing the text and "
        "its views writing the rows. Baselines of the same run: the same text parsed into a "
        f"plain table without views {m['parse_only_events_per_s']:,.0f} events/s "
        f"({m['parse_only_events_per_cpu_s']:,.0f} per CPU-second); the engine's "
        f"`INSERT ... SELECT FROM numbers()` of as many rows {m['native_rows_per_s']:,.0f} "
        f"rows/s ({m['native_rows_per_cpu_s']:,.0f} per CPU-second).\n\n"
        f"Target ingest >= {TARGET_INGEST:,} events/s batched: wall clock "
        f"{verdict(pg['outbox_events_per_s'] >= TARGET_INGEST)} "
        f"({pg['outbox_events_per_s']:,.0f}/s from the outbox at this load), per CPU-second "
        f"{verdict(pg['outbox_events_per_cpu_s'] >= TARGET_INGEST)} "
        f"({pg['outbox_events_per_cpu_s']:,.0f} per CPU-second of the ingesting process). "
        "Replaying every batch afterwards left the FINAL counts unchanged (checked in the "
        "run).\n"
    )
    if p.get("queries_fresh_s"):
        funnel_fresh = p["queries_fresh_s"]["funnel (windowFunnel)"]
        funnel_merged = p["queries_merged_s"]["funnel (windowFunnel)"]
        rows = "\n".join(
            f"| {name} | {p['queries_fresh_s'][name]:.3f} | {p['queries_merged_s'][name]:.3f} |"
            for name in p["queries_fresh_s"]
        )
        section += (
            f"\nQueries over {p['query_events']:,} generated events of "
            f"{p['query_events'] // 10:,} users (wall seconds, best of 3; generated in "
            f"{p['generate_seconds']:.1f} s, {p['parts_before_optimize']} active parts of "
            f"`events`, then `OPTIMIZE ... FINAL` of `events` and `user_funnel` in "
            f"{p['optimize_seconds']:.1f} s):\n\n"
            "| query | fresh parts | after OPTIMIZE |\n|---|---:|---:|\n"
            f"{rows}\n\n"
            f"Target funnel over 10M events < {TARGET_FUNNEL_S:.0f} s: fresh "
            f"{verdict(funnel_fresh < TARGET_FUNNEL_S)} ({funnel_fresh:.3f} s), merged "
            f"{verdict(funnel_merged < TARGET_FUNNEL_S)} ({funnel_merged:.3f} s). CPU seconds "
            "of this process per funnel query (best of 3, chDB's threads included), fresh: "
            + ", ".join(f"{k}: {v:.3f} s" for k, v in p["funnel_cpu_fresh_s"].items())
            + "; merged: "
            + ", ".join(f"{k}: {v:.3f} s" for k, v in p["funnel_cpu_s"].items())
            + ". Both funnels answered the same levels (checked in the run). Raw results: "
            "`bench/results/analytics.json`.\n"
        )
    doc = ROOT / "docs" / "performance.md"
    text_ = doc.read_text() if doc.exists() else "# Performance\n"
    start = text_.find("## Analytics")
    if start == -1:
        text_ = text_.rstrip("\n") + "\n\n" + section
    else:
        end = text_.find("\n## ", start + 1)
        text_ = text_[:start] + section + ("" if end == -1 else text_[end:])
    doc.write_text(text_)
    return doc


if __name__ == "__main__":
    main()
