"""Analytics benchmark: ingest events/s into ClickHouse and the dashboard queries over 10M events.

Run: `uv run python -m bench.analytics` (`--events N` for the query part, default 10 million).
Everything runs on chDB in this process (the embedded default; a server would be measured the
same way with CLICKHOUSE_URL) and one embedded PostgreSQL for the outbox path.

- ingest, our path: outbox rows read from PostgreSQL by the real `Ingestor` (cursor, batches
  of ANALYTICS_BATCH_SIZE), normalized (business facts, PII scrub, JSON) and inserted;
- ingest, ClickHouse only: the same normalization and insert from rows already in memory;
- baseline of the same run: clickhouse-connect inserting the same, already built rows
  (no normalization), and the engine's own `INSERT ... SELECT FROM numbers()`.
- queries: each dashboard query (warehouse.py, with FINAL) over N generated events of
  N/10 users, best of 3, before and after `OPTIMIZE TABLE ... FINAL`; baseline `count()`.

Targets (issue 21): ingest >= 50,000 events/s batched; the funnel over 10M events < 1 s.
Results: bench/results/analytics.json and the "Analytics" section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
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

from bench.common import ROOT, machine, write
from pull import devstack
from pull.analytics import chschema, warehouse
from pull.analytics.client import ConnectWarehouse, Target
from pull.analytics.ingest import Ingestor, outbox_rows
from pull.analytics.normalize import COLUMNS
from pull.analytics.repository import OutboxRow
from pull.kit.db import make_engine, make_sessionmaker, utcnow
from pull.migrate import upgrade

INGEST_EVENTS = 200_000
BATCH = 5_000
TARGET_INGEST = 50_000
TARGET_FUNNEL_S = 1.0


def _payload(i: int) -> tuple[str, dict[str, Any]]:
    user = str(uuid.UUID(int=i % 50_000 + 1))
    kind = i % 4
    if kind == 0:
        return "exchange.trade", {
            "ticker": f"KX-{i % 200}",
            "order_id": str(uuid.UUID(int=i + 10**9)),
            "user_id": user,
            "side": "yes" if i % 2 else "no",
            "action": "buy",
            "fills": [
                {
                    "count": 1 + i % 9,
                    "yes_price": 1 + i % 98,
                    "maker_user_id": str(uuid.UUID(int=(i * 7) % 50_000 + 1)),
                    "maker_order_id": str(uuid.UUID(int=i + 2 * 10**9)),
                    "taker_fee": i % 5,
                    "maker_fee": 0,
                }
            ],
        }
    if kind == 1:
        return "funding.deposit_settled", {
            "deposit_id": str(uuid.UUID(int=i + 3 * 10**9)),
            "user_id": user,
            "amount": 1_000 + i % 100_000,
        }
    if kind == 2:
        return "exchange.market", {"ticker": f"KX-{i % 200}", "status": "open"}
    return "kyc.tier_changed", {"user_id": user, "from": "none", "to": "basic"}


def _outbox(n: int) -> list[OutboxRow]:
    now = utcnow()
    return [OutboxRow(i + 1, *_payload(i), now) for i in range(n)]


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _cpu_timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process: Python and chDB's threads)."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def ingest_in_memory(wh: ConnectWarehouse, n: int) -> dict[str, float]:
    events = _outbox(n)
    warehouse.truncate(wh)

    def ours() -> None:
        for i in range(0, n, BATCH):
            warehouse.insert_rows(wh, outbox_rows(events[i : i + BATCH]), utcnow())

    ours_s, ours_cpu = _cpu_timed(ours)
    rows_written = warehouse.count_events(wh, final=False)
    built = [r.values(utcnow().replace(tzinfo=None)) for r in outbox_rows(events)]
    warehouse.truncate(wh)

    def raw() -> None:
        for i in range(0, len(built), BATCH * 2):
            wh.insert("events", built[i : i + BATCH * 2], COLUMNS)

    raw_s, raw_cpu = _cpu_timed(raw)
    warehouse.truncate(wh)
    native_s = _timed(
        lambda: wh.command(
            f"INSERT INTO {wh.database}.events (event_id, event, source, topic, user_id, ts, "  # noqa: S608
            "properties, ingested_at, ver) SELECT toString(number), 'x', 'bench', 'x', "
            "toString(number % 50000), now64(3), '{}', now64(3), number "
            f"FROM numbers({len(built)})"
        )
    )
    warehouse.truncate(wh)
    return {
        "events": n,
        "rows_written": rows_written,
        "ours_events_per_s": n / ours_s,
        "ours_rows_per_s": rows_written / ours_s,
        "ours_events_per_cpu_s": n / ours_cpu,
        "raw_insert_rows_per_s": len(built) / raw_s,
        "raw_insert_rows_per_cpu_s": len(built) / raw_cpu,
        "native_rows_per_s": len(built) / native_s,
    }


async def ingest_from_postgres(wh: ConnectWarehouse, n: int, data: Path) -> dict[str, float]:
    port = devstack.free_port()
    pg, url = devstack.start_postgres(data, port)
    try:
        await asyncio.to_thread(upgrade, url)
        engine = make_engine(url, pool_size=2, max_overflow=0)
        maker = make_sessionmaker(engine)
        async with maker() as s, s.begin():
            for i in range(0, n, 20_000):
                await s.execute(
                    text(
                        "INSERT INTO outbox_events (topic, key, payload, attempts) "
                        "SELECT t, 'k', p::jsonb, 0 FROM unnest(CAST(:t AS text[]), "
                        "CAST(:p AS text[])) AS u(t, p)"
                    ),
                    {
                        "t": [_payload(j)[0] for j in range(i, min(i + 20_000, n))],
                        "p": [json.dumps(_payload(j)[1]) for j in range(i, min(i + 20_000, n))],
                    },
                )
        warehouse.truncate(wh)
        ingestor = Ingestor(maker, wh, batch_size=BATCH, gap_seconds=0)
        t, c = time.perf_counter(), time.process_time()
        result = await ingestor.drain()
        elapsed, cpu = time.perf_counter() - t, time.process_time() - c
        assert result.outbox == n, result
        # a replayed batch changes nothing
        before = warehouse.count_events(wh)
        async with maker() as s, s.begin():
            await s.execute(text("UPDATE analytics_cursors SET position = 0"))
        await Ingestor(maker, wh, batch_size=BATCH, gap_seconds=0).drain()
        assert warehouse.count_events(wh) == before
        await engine.dispose()
        return {
            "events": n,
            "events_per_s": n / elapsed,
            "seconds": elapsed,
            "events_per_cpu_s": n / cpu,
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
    args = parser.parse_args()
    load_before = os.getloadavg()
    data = Path(tempfile.mkdtemp(prefix="pull-bench-analytics-"))
    try:
        wh = ConnectWarehouse(Target(database="pull_analytics", chdb_path=str(data / "chdb")))
        chschema.migrate(wh)
        print("ingest from memory ...", flush=True)
        memory = ingest_in_memory(wh, args.ingest_events)
        print(memory, flush=True)
        print("ingest from the PostgreSQL outbox ...", flush=True)
        pg = asyncio.run(ingest_from_postgres(wh, args.ingest_events, data))
        print(pg, flush=True)
        print(f"generating {args.events:,} events ...", flush=True)
        gen_s = _timed(lambda: generate(wh, args.events))
        parts = int(
            wh.rows(
                "SELECT count() FROM system.parts WHERE database = 'pull_analytics' "
                "AND table = 'events' AND active"
            )[0][0]
        )
        fresh = queries(wh)
        print(fresh, flush=True)
        optimize_s = _timed(lambda: wh.command("OPTIMIZE TABLE pull_analytics.events FINAL"))
        merged = queries(wh)
        print(merged, flush=True)
        cpu = funnel_cpu(wh)
        print(cpu, flush=True)
        funnel = warehouse.funnel_levels(wh, dt.date(2026, 10, 1), dt.date(2026, 11, 30), 2592000)
        previous = grouped_funnel(wh, dt.date(2026, 10, 1), dt.date(2026, 11, 30))
        assert funnel == previous, (funnel, previous)
        wh.close()
    finally:
        shutil.rmtree(data, ignore_errors=True)
    host = machine()
    payload = {
        "machine": host,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "ingest_memory": memory,
        "ingest_postgres": pg,
        "query_events": args.events,
        "generate_seconds": gen_s,
        "parts_before_optimize": parts,
        "optimize_seconds": optimize_s,
        "queries_fresh_s": fresh,
        "queries_merged_s": merged,
        "funnel_cpu_s": cpu,
        "funnel_levels": [list(map(int, r)) for r in funnel],
    }
    path = write("analytics", payload)
    doc = update_docs(payload)
    print(f"\nwritten to {path} and {doc}")


def update_docs(p: dict[str, Any]) -> Path:
    m, pg, host = p["ingest_memory"], p["ingest_postgres"], p["machine"]
    ingest_ok = pg["events_per_s"] >= TARGET_INGEST
    funnel_fresh = p["queries_fresh_s"]["funnel (windowFunnel)"]
    funnel_merged = p["queries_merged_s"]["funnel (windowFunnel)"]
    rows = "\n".join(
        f"| {name} | {p['queries_fresh_s'][name]:.3f} | {p['queries_merged_s'][name]:.3f} |"
        for name in p["queries_fresh_s"]
    )

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    section = (
        "## Analytics (`bench/analytics.py`)\n\n"  # noqa: S608 - Markdown, not SQL
        f"`uv run python -m bench.analytics`: chDB in-process (the embedded default), "
        f"{host['cpus']} CPUs, Python {host['python']}, {host['date']}; the machine is shared "
        "with other work while this runs, so compare rows of the same run.\n\n"
        "Ingest (events/s; an outbox event of the mix writes 1-3 rows: its raw row and its "
        "business facts):\n\n"
        "| path | events/s | rows/s | per CPU-second of this process |\n"
        "|---|---:|---:|---:|\n"
        f"| `Ingestor` from the PostgreSQL outbox ({pg['events']:,} events, batches of "
        f"{BATCH:,}) | {pg['events_per_s']:,.0f} | | {pg['events_per_cpu_s']:,.0f} events |\n"
        f"| normalize + insert from memory | {m['ours_events_per_s']:,.0f} | "
        f"{m['ours_rows_per_s']:,.0f} | {m['ours_events_per_cpu_s']:,.0f} events |\n"
        f"| baseline: clickhouse-connect insert of built rows | | "
        f"{m['raw_insert_rows_per_s']:,.0f} | {m['raw_insert_rows_per_cpu_s']:,.0f} rows |\n"
        f"| baseline: engine `INSERT ... SELECT FROM numbers()` | | "
        f"{m['native_rows_per_s']:,.0f} | |\n\n"
        f"Load average before / after the run: {p['load_average_before'][0]:.1f} / "
        f"{p['load_average_after'][0]:.1f} on {host['cpus']} CPUs (other sessions' work): "
        "wall-clock rates are what this process got, the CPU-second column is what one core "
        "does.\n\n"
        f"Target ingest >= {TARGET_INGEST:,} events/s batched: {verdict(ingest_ok)} "
        f"({pg['events_per_s']:,.0f}/s end to end from PostgreSQL). Replaying every batch "
        "afterwards left the FINAL counts unchanged (checked in the run).\n\n"
        f"Queries over {p['query_events']:,} generated events of {p['query_events'] // 10:,} "
        f"users (seconds, best of 3; generated in {p['generate_seconds']:.1f} s, "
        f"{p['parts_before_optimize']} active parts, then `OPTIMIZE TABLE ... FINAL` in "
        f"{p['optimize_seconds']:.1f} s):\n\n"
        "| query | fresh parts | after OPTIMIZE |\n|---|---:|---:|\n"
        f"{rows}\n\n"
        f"Target funnel over 10M events < {TARGET_FUNNEL_S:.0f} s: fresh "
        f"{verdict(funnel_fresh < TARGET_FUNNEL_S)} ({funnel_fresh:.3f} s), merged "
        f"{verdict(funnel_merged < TARGET_FUNNEL_S)} ({funnel_merged:.3f} s). CPU seconds of "
        "this process per funnel query (best of 3, chDB's threads included): "
        + ", ".join(f"{k}: {v:.3f} s" for k, v in p["funnel_cpu_s"].items())
        + ". The funnel reads `user_funnel` (one row per user, ordered by user, FINAL; "
        "windowFunnel per row through arrayReduce); the baseline row is the previous query "
        "(windowFunnel grouped over `user_firsts`), both answering the same levels (checked in "
        "the run). The facts, revenue and markets queries read `events` with FINAL (exactly "
        "once by event id; the `count() FINAL` row is that cost alone); retention and "
        "DAU/WAU/MAU read the rollups `user_firsts` and `user_days` (docs/analytics.md), which "
        "need no FINAL but group by a million String user ids. `OPTIMIZE` merges `events` "
        "only. Raw results: `bench/results/analytics.json`.\n"
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
