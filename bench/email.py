"""Email benchmark: triage throughput on one core; hybrid search latency over 100,000 messages.

Run: `uv run python -m bench.email`. Triage runs in this process pinned to one CPU, through
the serving model (`pull.email.textmodel`: TF-IDF, four heads, the LSA embedding: everything a
stored message gets), over the 3,000 labeled messages; its same-run baseline is the feature
extraction alone (tokenising). Search loads 100,000 messages into an embedded PostgreSQL
(pgvector HNSW + GIN, built after the load) and queries `GET /api/v1/email/search` of a real
`pull api` sequentially; the baseline is `GET /health/live` of the same process in the same
run. Results: bench/results/email.json and the "Email" section of docs/performance.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np

from bench.common import ROOT, Stack, machine, write
from pull import devstack
from pull.email.textmodel import features, model, vector_literal
from pull.kit.crypto import FieldCipher
from pull.migrate import upgrade

TOTAL = 100_000
USERS = (70_000, 10_000, 10_000, 10_000)  # the searched mailbox is the 70,000 one
QUERIES = 300
DATA = ROOT / "src" / "pull" / "email" / "data" / "labeled.jsonl"
PHRASES = [
    "margin call",
    "order filled",
    "invoice due",
    "meeting tomorrow",
    "discount code",
    "password changed",
    "friend request",
    "mailing list digest",
    "tax documents",
    "package delivered",
    "coffee next week",
    "stop-loss triggered",
    "free shipping",
    "deposit received",
    "can we reschedule",
    "market settled",
    "new follower",
    "subscription renews",
    "release announcement",
    "low balance alert",
]


def rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA.read_text().splitlines()]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def triage_figures(data: list[dict[str, Any]]) -> dict[str, float]:
    cpu = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {cpu})
    m = model()
    m.triage(subject="warm", body="up", sender="a@b.c")
    best_base, best_full = 0.0, 0.0
    for _ in range(3):  # best of three: the machine is shared
        start = time.perf_counter()
        for r in data:
            features(r["subject"], r["body"], r["from_email"])
        best_base = max(best_base, len(data) / (time.perf_counter() - start))
        start = time.perf_counter()
        for r in data:
            idx, vals = m.vectorize(r["subject"], r["body"], r["from_email"])
            m.triage(subject=r["subject"], body=r["body"], sender=r["from_email"])
            m.embed_vector(idx, vals)
        best_full = max(best_full, len(data) / (time.perf_counter() - start))
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return {"cpu": cpu, "baseline_tokenise_msgs_per_s": best_base, "triage_msgs_per_s": best_full}


async def load(url: str, user_ids: list[uuid.UUID], data: list[dict[str, Any]]) -> float:
    """100,000 messages: the labeled set, varied, with embeddings from the real model."""
    m = model()
    cipher = FieldCipher(os.environ.get("FIELD_ENCRYPTION_KEYS") or _dev_key())
    base = []
    for r in data:
        idx, vals = m.vectorize(r["subject"], r["body"], r["from_email"])
        base.append((r, m.embed_vector(idx, vals)))
    rng = random.Random(7)
    noise = np.random.default_rng(7)
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    start = time.perf_counter()
    try:
        await conn.execute("DROP INDEX ix_email_messages_embedding")
        await conn.execute("DROP INDEX ix_email_messages_search")
        n = 0
        for uid, count in zip(user_ids, USERS, strict=True):
            grant = uuid.uuid4()
            await conn.execute(
                "INSERT INTO email_grants (id, user_id, provider, grant_enc, grant_hash, email_enc,"
                " status, sync_state, backfilled)"
                " VALUES ($1,$2,'sandbox',$3,$4,$5,'active','live',$6)",
                grant,
                uid,
                cipher.encrypt(f"g-{grant}"),
                grant.hex * 2,
                cipher.encrypt("b@x.io"),
                count,
            )
            batch: list[tuple[Any, ...]] = []
            for i in range(count):
                r, vec = base[rng.randrange(len(base))]
                noisy = vec + noise.normal(0, 0.02, vec.shape).astype(np.float32)
                ts = 1_780_000_000 + n
                batch.append(
                    (
                        uuid.uuid4(),
                        grant,
                        uid,
                        f"m{n}",
                        f"t{n // 3}",
                        r["subject"],
                        r["from_name"],
                        r["from_email"],
                        ts,
                        cipher.encrypt(r["body"][:50]),
                        r["category"],
                        r["priority"],
                        f"{r['subject']} {r['from_email']} {r['body']}",
                        vector_literal(noisy / max(float((noisy**2).sum()) ** 0.5, 1e-9)),
                    )
                )
                n += 1
                if len(batch) == 5_000 or i == count - 1:
                    await conn.executemany(
                        "INSERT INTO email_messages (id, grant_ref, user_id, nylas_id, thread_id,"
                        " subject, from_name, from_email, to_json, folders, received_at, unread,"
                        " starred, body_enc, snippet_enc, body_pending, category, priority,"
                        " reply_probability, intent, search, embedding) VALUES ($1,$2,$3,$4,$5,"
                        "$6,$7,$8,'[]','[\"INBOX\"]',to_timestamp($9),true,false,$10,$10,false,"
                        "$11,$12,0,'none',strip(to_tsvector('english',$13)),$14::vector)",
                        batch,
                    )
                    batch = []
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute(
            "CREATE INDEX ix_email_messages_embedding ON email_messages USING hnsw "
            "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        await conn.execute(
            "CREATE INDEX ix_email_messages_search ON email_messages USING gin (search)"
        )
        await conn.execute("ANALYZE email_messages")
    finally:
        await conn.close()
    return time.perf_counter() - start


@contextlib.contextmanager
def api_process(s: Stack, port: int, tmp: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`pull api` on the bench's database (its log in the temp dir; 180 s to start on a
    loaded machine)."""
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": s.database_url,
        "REDIS_URL": s.redis_url,
        "TEMPORAL_ADDRESS": s.temporal_address,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "warning",
        "RATE_LIMIT_ENABLED": "false",
        "ANALYTICS_INGEST": "off",
    }
    log = (tmp / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pull.cli", "api"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((tmp / "api.log").read_text()[-2000:]) from None
                time.sleep(0.3)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        log.close()


def _dev_key() -> str:
    from pull.config import Settings

    return Settings().field_encryption_keys


def timed(
    client: httpx.Client, path: str, params: dict[str, str], headers: dict[str, str]
) -> float:
    start = time.perf_counter()
    r = client.get(path, params=params, headers=headers)
    elapsed = (time.perf_counter() - start) * 1000
    assert r.status_code == 200, r.text
    return elapsed


def main() -> None:
    data = rows()
    tri = triage_figures(data)
    print(
        f"triage {tri['triage_msgs_per_s']:,.0f} msg/s on one core "
        f"(tokenise only {tri['baseline_tokenise_msgs_per_s']:,.0f})"
    )
    tmp = Path(tempfile.mkdtemp(prefix="pull-bench-email-"))
    tmp.chmod(0o755)
    pg_port = devstack.free_port()
    pg, url = devstack.start_postgres(tmp, pg_port)
    rd, redis_url = devstack.start_redis(tmp, devstack.free_port())
    search: dict[str, Any] = {}
    try:
        upgrade(url)
        port = devstack.free_port()
        stack = Stack(url, redis_url, "127.0.0.1:1", pg_port)
        with (
            api_process(stack, port, tmp),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c,
        ):
            users = []
            for _ in USERS:
                reg = c.post(
                    "/api/auth/register",
                    json={
                        "email": f"bench-{uuid.uuid4().hex[:8]}@example.com",
                        "password": "Correct-Horse-9-Battery",
                    },
                )
                assert reg.status_code == 201, reg.text
                users.append(
                    (
                        uuid.UUID(reg.json()["user"]["id"]),
                        {"Authorization": f"Bearer {reg.json()['access_token']}"},
                    )
                )
            load_s = asyncio.run(load(url, [u for u, _ in users], data))
            print(f"loaded {TOTAL:,} messages and built the indexes in {load_s:.0f} s")
            rng = random.Random(3)
            for _ in range(20):  # warm up
                timed(c, "/api/v1/email/search", {"q": rng.choice(PHRASES)}, users[0][1])
                timed(c, "/health/live", {}, {})
            base, big, small = [], [], []
            for i in range(QUERIES):
                base.append(timed(c, "/health/live", {}, {}))
                big.append(
                    timed(c, "/api/v1/email/search", {"q": rng.choice(PHRASES)}, users[0][1])
                )
                if i % 3 == 0:
                    small.append(
                        timed(c, "/api/v1/email/search", {"q": rng.choice(PHRASES)}, users[1][1])
                    )
            for name, values in (
                ("baseline GET /health/live", base),
                ("search, 70,000-message mailbox", big),
                ("search, 10,000-message mailbox", small),
            ):
                search[name] = {
                    "n": len(values),
                    "p50_ms": round(statistics.median(values), 2),
                    "p99_ms": round(pct(values, 0.99), 2),
                    "mean_ms": round(statistics.fmean(values), 2),
                }
                v = search[name]
                print(f"{name:36s} p50 {v['p50_ms']:7.2f} ms  p99 {v['p99_ms']:7.2f} ms")
            search["load_seconds"] = round(load_s, 1)
    finally:
        rd.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    host = machine()
    path = write("email", {"machine": host, "triage": tri, "search": search, "total": TOTAL})
    doc = update_docs(tri, search, host)
    print(f"written to {path} and {doc}")


def _verdict(tri: dict[str, float], search: dict[str, Any]) -> str:
    worst = max(v["p99_ms"] for k, v in search.items() if isinstance(v, dict) and "search" in k)
    base = search["baseline GET /health/live"]["p99_ms"]
    triage = "met" if tri["triage_msgs_per_s"] >= 200 else "missed"
    verdict = "met" if worst < 100 else "missed"
    return (
        f"Triage target {triage}. Search p99 target {verdict} in this run: worst p99 "
        f"{worst:.0f} ms, while the bare endpoint's p99 was {base:.0f} ms on the same loaded "
        "machine (its p50 of a few ms shows how much of the tail is queueing behind other "
        "work). Each search is one SQL statement (HNSW top 50 with the iterative scan, GIN "
        "full-text top 50 ranked by ts_rank, fused), then the hits' rows and snippets."
    )


def update_docs(tri: dict[str, float], search: dict[str, Any], host: dict[str, Any]) -> Path:
    """Replace the "## Email" section of docs/performance.md, leaving the others alone."""
    doc = ROOT / "docs" / "performance.md"
    lines = ["| scenario | n | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    for name, v in search.items():
        if isinstance(v, dict):
            lines.append(f"| {name} | {v['n']} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} |")
    section = (
        "## Email (`bench/email.py`)\n\n"
        f"`uv run python -m bench.email`, {host['cpus']} CPUs shared with other work running at "
        f"the same time, Python {host['python']}, {host['date']}.\n\n"
        f"Triage on one core (pinned to CPU {tri['cpu']}), over the 3,000 labeled messages, "
        "best of three: **"
        f"{tri['triage_msgs_per_s']:,.0f} messages/s** for the whole per-message model "
        "(TF-IDF, category, priority, reply and intent heads, the 128-d embedding); the same-run "
        f"baseline, tokenising alone, is {tri['baseline_tokenise_msgs_per_s']:,.0f}/s "
        "(target: ≥ 200/s).\n\n"
        f"Search over {TOTAL:,} messages in four mailboxes (70,000 + 3 x 10,000; HNSW and GIN "
        f"built after the load, {search.get('load_seconds', 0):.0f} s in all), "
        "`GET /api/v1/email/search?q=` of a real `pull api`, one request at a time, beside the "
        "same process's `GET /health/live` (target: p99 < 100 ms):\n\n"
        + "\n".join(lines)
        + "\n\n"
        + _verdict(tri, search)
        + "\n\nRaw results: `bench/results/email.json`.\n"
    )
    text_ = doc.read_text() if doc.exists() else "# Performance\n"
    start = text_.find("## Email")
    if start == -1:
        text_ = text_.rstrip("\n") + "\n\n" + section
    else:
        end = text_.find("\n## ", start + 1)
        text_ = text_[:start] + section + (text_[end + 1 :] if end != -1 else "")
    doc.write_text(text_)
    return doc


if __name__ == "__main__":
    main()
