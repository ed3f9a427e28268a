"""Live-feed benchmark: idle subscribers' memory and a hot market's commit -> client latency.

Run: `uv run python -m bench.stream`. Everything runs on this machine in one run: embedded
PostgreSQL/Redis/Temporal, real `pull api` processes (rate limits off) and the clients
(`websockets` for the idle sockets, bench/ws_client.py for the hot market). The machine is
shared with other work, so figures are noisy; the baseline is taken in the same run.

Layout (BENCH_LAYOUT): `split` (default) = one `pull api` takes the orders, another holds the
sockets (how it deploys: the stream paths routed to their own Deployment, see
docs/realtime.md), with BENCH_SOCKET_WORKERS uvicorn workers (1: one process holds every
socket; 2: the kernel spreads the sockets over two, as two pods would); `shared` = one
process does both.

1. Idle: BENCH_IDLE app-stream WebSockets (`/api/v1/stream?markets=<one market>`), opened and
   held; the socket process's RSS before and after, divided by the connections.
2. Hot market: BENCH_HOT app-stream sockets on one market (lean clients, bench/ws_client.py,
   in BENCH_CLIENT_PROCS processes; their users place no orders) while single-order requests
   (`POST /api/v1/orders`, crossing and resting limit orders) are offered at BENCH_RATE per
   second for BENCH_SECONDS: open loop, one ticket every 1/BENCH_RATE s, sent by
   BENCH_ORDER_CONNS keep-alive connections as they come free, to an order API with
   BENCH_ORDER_WORKERS processes. Tickets still unsent when the time is up are reported
   (`not_sent`): the order path did not take the offered rate. What committed is counted in
   PostgreSQL (the market's orders and its book `seq`, before and after), so the achieved rate
   is the committed one, not the client's view. Each client timestamps every `book_delta`;
   latency is receive time minus the event's `ts` (the earliest commit in the tick's batch,
   taken in the committing transaction, so it includes the commit). The socket process's
   histograms split it: `stream_event_lag_seconds` (commit -> its hub reading the event) and
   `stream_fanout_seconds` (one tick's writes to every subscriber). Messages/s out is the
   socket process's `stream_messages_sent_total` over the run; CPU seconds per process (with
   its children) come from psutil. BENCH_PYSPY=<py-spy path> profiles the socket process
   over the order flow (raw collapsed stacks to BENCH_PYSPY_OUT).
3. Baseline (same run): the bus alone, XADD -> XREAD on the same Redis at BENCH_RATE/s.

Results go to bench/results/stream.json; docs/performance.md quotes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import random
import subprocess
import time
import uuid
from typing import Any

import aiohttp
import httpx
import orjson
import psutil
import websockets
from redis.asyncio import Redis
from sqlalchemy import text

from bench import ws_client
from bench.common import machine, pull_api, stack, write
from pull import devstack
from pull.exchange import service
from pull.exchange.schemas import EventCreate, MarketCreate, SeriesCreate
from pull.kit.db import make_engine, make_sessionmaker
from pull.kyc import service as kyc
from pull.ledger import service as ledger

IDLE = int(os.environ.get("BENCH_IDLE", "5000"))
HOT = int(os.environ.get("BENCH_HOT", "1000"))
RATE = float(os.environ.get("BENCH_RATE", "200"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
ORDER_CONNS = int(os.environ.get("BENCH_ORDER_CONNS", "64"))
SOCKET_WORKERS = int(os.environ.get("BENCH_SOCKET_WORKERS", "1"))
ORDER_WORKERS = int(os.environ.get("BENCH_ORDER_WORKERS", "2"))  # API_WORKERS of the order API
PYSPY = os.environ.get("BENCH_PYSPY")  # path of py-spy: profile the socket process
PYSPY_OUT = os.environ.get("BENCH_PYSPY_OUT", "/tmp/stream-sockets.pyspy.txt")
LAYOUT = os.environ.get("BENCH_LAYOUT", "split")
CLIENT_PROCS = int(os.environ.get("BENCH_CLIENT_PROCS", "2"))
TICK = os.environ.get("BENCH_TICK")  # STREAM_TICK_SECONDS of the socket process
TICKER = "KXSTREAM-1-HOT"
USERS = 8


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def setup(database_url: str, api: str) -> list[str]:
    engine = make_engine(database_url, pool_size=2, max_overflow=0)
    maker = make_sessionmaker(engine)
    now = dt.datetime.now(dt.UTC)
    tokens: list[str] = []
    try:
        async with maker() as s, s.begin():
            await service.create_series(
                session=s, data=SeriesCreate(ticker="KXSTREAM", title="Stream bench")
            )
            await service.create_event(
                session=s,
                data=EventCreate(ticker="KXSTREAM-1", series_ticker="KXSTREAM", title="Bench"),
            )
            await service.create_market(
                session=s,
                data=MarketCreate(
                    ticker=TICKER,
                    event_ticker="KXSTREAM-1",
                    title=TICKER,
                    open_time=now - dt.timedelta(minutes=1),
                    close_time=now + dt.timedelta(days=1),
                ),
            )
            await service.set_market_status(session=s, ticker=TICKER, action="open")
        async with httpx.AsyncClient(base_url=api, timeout=60) as c:
            for i in range(USERS):
                r = await c.post(
                    "/api/auth/register",
                    json={
                        "email": f"sbench-{i}-{uuid.uuid4().hex[:6]}@example.com",
                        "password": "Correct-Horse-9-Battery",
                    },
                )
                r.raise_for_status()
                body = r.json()
                uid = uuid.UUID(body["user"]["id"])
                tokens.append(body["access_token"])
                async with maker() as s, s.begin():
                    await kyc.set_tier(
                        session=s, user_id=uid, tier="accredited", actor_id=None, note="bench"
                    )
                    await ledger.transfer(
                        session=s,
                        idempotency_key=f"sbench:{uid}",
                        kind="bench.deposit",
                        legs=[
                            ledger.Leg(ledger.system_account("bank_clearing"), -100_000_000),
                            ledger.Leg(ledger.user_account(uid, "cash"), 100_000_000),
                        ],
                    )
    finally:
        await engine.dispose()
    return tokens


def histogram(api: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts (le -> count) of a histogram on `api`'s /metrics."""
    out: dict[float, float] = {}
    for line in httpx.get(f"{api}/metrics", timeout=10).text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = float(line.split()[-1])
    return out


def quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """p50/p99 of what a histogram observed between two scrapes: the upper bound (ms) of the
    bucket that holds the quantile."""
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = delta[-1][1] if delta else 0.0
    out: dict[str, Any] = {"count": total}
    for q in (0.5, 0.99):
        out[f"p{int(q * 100)}_at_most_ms"] = next(
            (le * 1000 for le, n in delta if total and n >= q * total), None
        )
    return out


def sent_total(api: str) -> float:
    text = httpx.get(f"{api}/metrics", timeout=10).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("stream_messages_sent_total{")
    )


async def open_sockets(api: str, token: str, n: int) -> list[Any]:
    url = api.replace("http://", "ws://") + f"/api/v1/stream?markets={TICKER}"
    socks: list[Any] = []
    sem = asyncio.Semaphore(100)

    async def one() -> None:
        async with sem:
            ws = await websockets.connect(
                url,
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=60,
                compression=None,
                max_queue=None,
            )
            for _ in range(3):  # hello, subscribed, book
                await ws.recv()
            socks.append(ws)

    await asyncio.gather(*(one() for _ in range(n)))
    return socks


def client_proc(api: str, token: str, n: int, ready: Any, stop: Any, out: Any) -> None:
    """One client process: `n` lean sockets (bench.ws_client) on the hot market; each
    `book_delta`'s latency is its receive time minus its `ts` (the earliest commit in it)."""

    async def main() -> None:
        url = api.replace("http://", "ws://") + f"/api/v1/stream?markets={TICKER}"
        latencies: list[float] = []
        received = 0
        greeted: list[asyncio.Future[None]] = []
        loop = asyncio.get_running_loop()

        def listener(first: asyncio.Future[None]) -> ws_client.OnText:
            seen = 0

            def on_text(raw: bytes) -> None:
                nonlocal seen, received
                if seen < 3:  # hello, subscribed, book
                    seen += 1
                    if seen == 3:
                        first.set_result(None)
                    return
                received += 1
                if raw.startswith(b'{"type":"book_delta"'):
                    at = raw.index(b'"ts":') + 5
                    latencies.append(time.time() * 1000 - int(raw[at : raw.index(b",", at)]))

            return on_text

        sem = asyncio.Semaphore(100)
        headers = {"Authorization": f"Bearer {token}"}

        async def one() -> ws_client.Client:
            first: asyncio.Future[None] = loop.create_future()
            greeted.append(first)
            async with sem:
                client = await ws_client.connect(url, headers, listener(first))
                await asyncio.wait_for(first, 60)
                return client

        socks = await asyncio.gather(*(one() for _ in range(n)))
        received = 0
        ready.set()
        await asyncio.to_thread(stop.wait)  # a process-shared event: wait in a thread
        open_at_end = sum(1 for c in socks if not c.closed.done())
        out.put({"latencies": latencies, "received": received, "open_at_end": open_at_end})
        for c in socks:
            c.close()

    asyncio.run(main())


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds of each process and its children (an API with API_WORKERS > 1)."""
    out = {}
    for name, pid in pids.items():
        proc = psutil.Process(pid)
        total = 0.0
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        out[name] = total
    return out


def rss(pid: int) -> int:
    """Resident memory of a server and its workers."""
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


async def book_counts(database_url: str) -> dict[str, int]:
    """What committed on the hot market: its orders and its published book seq."""
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as c:
            row = (
                await c.execute(
                    text(
                        "SELECT (SELECT count(*) FROM exchange_orders o WHERE o.market_id = m.id),"
                        " (SELECT coalesce(max(b.seq), 0) FROM exchange_book_state b"
                        "  WHERE b.market_id = m.id)"
                        " FROM exchange_markets m WHERE m.ticker = :t"
                    ),
                    {"t": TICKER},
                )
            ).one()
        return {"orders": int(row[0]), "seq": int(row[1])}
    finally:
        await engine.dispose()


def order_body(rng: random.Random) -> bytes:
    side = rng.choice(["yes", "no"])
    return orjson.dumps(
        {
            "ticker": TICKER,
            "side": side,
            "action": "buy",
            "count": rng.randint(1, 3),
            f"{side}_price": rng.randint(45, 55),
            "time_in_force": "good_till_canceled",
        }
    )


async def order_flow(api: str, tokens: list[str]) -> dict[str, Any]:
    """Single `POST /api/v1/orders` offered at RATE/s (open loop: one ticket every 1/RATE s)
    for SECONDS, sent by ORDER_CONNS keep-alive connections as they come free. A ticket not
    yet sent when the time is up is counted as not sent: the order path did not keep up."""
    rng = random.Random(7)
    tickets: asyncio.Queue[float] = asyncio.Queue()
    http_ms: list[float] = []
    waited_ms: list[float] = []
    statuses: dict[str, int] = {}
    done = asyncio.Event()
    conn = aiohttp.TCPConnector(limit=ORDER_CONNS)
    timeout = aiohttp.ClientTimeout(total=60)

    async def worker(k: int, session: aiohttp.ClientSession) -> None:
        headers = {
            "Authorization": f"Bearer {tokens[k % len(tokens)]}",
            "Content-Type": "application/json",
        }
        while True:
            due = await tickets.get()
            if done.is_set():
                return
            t0 = time.perf_counter()
            waited_ms.append((t0 - due) * 1000)
            try:
                async with session.post(
                    f"{api}/api/v1/orders", data=order_body(rng), headers=headers
                ) as r:
                    await r.read()
                    key = str(r.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                key = type(exc).__name__
            statuses[key] = statuses.get(key, 0) + 1
            http_ms.append((time.perf_counter() - t0) * 1000)

    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        workers = [asyncio.create_task(worker(k, session)) for k in range(ORDER_CONNS)]
        start = time.perf_counter()
        n = int(RATE * SECONDS)
        for i in range(n):
            delay = start + i / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tickets.put_nowait(start + i / RATE)
        await asyncio.sleep(max(0.0, start + SECONDS - time.perf_counter()))
        done.set()
        unsent = tickets.qsize()
        for _ in workers:
            tickets.put_nowait(0.0)
        await asyncio.gather(*workers)  # in-flight requests finish (they may still commit)
        elapsed = time.perf_counter() - start
    return {
        "offered": n,
        "offered_per_s": RATE,
        "not_sent": unsent,
        "statuses": statuses,
        "http_p50_ms": pct(http_ms, 0.5),
        "http_p99_ms": pct(http_ms, 0.99),
        "queued_before_send_p99_ms": pct(waited_ms, 0.99),
        "elapsed_s": elapsed,
    }


def start_profiler(pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy on the socket process for the order flow's SECONDS (BENCH_PYSPY)."""
    if not PYSPY:
        return None
    args = [PYSPY, "record", "--nonblocking", "-r", "50", "-f", "raw", "-o", PYSPY_OUT]
    args += ["-d", str(int(SECONDS)), "-p", str(pid)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def hot_market(
    order_apis: list[str],
    stream_api: str,
    tokens: list[str],
    order_tokens: list[str],
    pids: dict[str, int],
    database_url: str,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    procs, readies = [], []
    share = [HOT // CLIENT_PROCS + (i < HOT % CLIENT_PROCS) for i in range(CLIENT_PROCS)]
    for i, n in enumerate(share):
        ready = ctx.Event()
        p = ctx.Process(
            target=client_proc, args=(stream_api, tokens[i % len(tokens)], n, ready, stop, out)
        )
        p.start()
        procs.append(p)
        readies.append(ready)
    for ready in readies:
        await asyncio.to_thread(ready.wait, 600)
    pids = {**pids, **{f"clients-{i}": p.pid for i, p in enumerate(procs) if p.pid}}
    await asyncio.sleep(1.0)
    before = sent_total(stream_api)
    lag0 = histogram(stream_api, "stream_event_lag_seconds")
    fan0 = histogram(stream_api, "stream_fanout_seconds")
    counts0 = await book_counts(database_url)
    cpu0 = cpu_seconds(pids)
    load0 = os.getloadavg()
    profiler = start_profiler(pids["sockets"])
    flow = await order_flow(order_apis[0], order_tokens)
    elapsed = flow["elapsed_s"]
    cpu1 = cpu_seconds(pids)
    sent = sent_total(stream_api) - before
    load1 = os.getloadavg()
    await asyncio.sleep(2.0)  # let the last deltas arrive
    lag = quantiles(lag0, histogram(stream_api, "stream_event_lag_seconds"))
    fanout = quantiles(fan0, histogram(stream_api, "stream_fanout_seconds"))
    counts1 = await book_counts(database_url)
    stop.set()
    latencies: list[float] = []
    received = open_at_end = 0
    for _ in procs:
        part = await asyncio.to_thread(out.get, True, 120)
        latencies += part["latencies"]
        received += part["received"]
        open_at_end += part["open_at_end"]
    for p in procs:
        p.join(30)
    if profiler is not None:
        profiler.wait(60)
    committed = counts1["orders"] - counts0["orders"]
    return {
        "layout": LAYOUT,
        "subscribers": HOT,
        "subscribers_open_at_end": open_at_end,
        "client_processes": CLIENT_PROCS,
        "order_api_workers": ORDER_WORKERS,
        "socket_api_workers": SOCKET_WORKERS,
        "order_connections": ORDER_CONNS,
        "orders": flow,
        "orders_committed": committed,
        "order_rate_committed_per_s": committed / elapsed,
        "book_events": counts1["seq"] - counts0["seq"],
        "deltas_received": len(latencies),
        "deltas_per_subscriber": len(latencies) / max(HOT, 1),
        "messages_received": received,
        "commit_to_client_p50_ms": pct(latencies, 0.5),
        "commit_to_client_p90_ms": pct(latencies, 0.9),
        "commit_to_client_p99_ms": pct(latencies, 0.99),
        "commit_to_client_max_ms": max(latencies) if latencies else float("nan"),
        "commit_to_hub_read": lag,
        "fanout_per_tick": fanout,
        "socket_process_messages_out_per_s": sent / elapsed,
        "cpu_seconds": {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1},
        "wall_seconds": round(elapsed, 2),
        "load_average": {"before": load0, "after": load1},
    }


async def bus_baseline(redis_url: str) -> dict[str, Any]:
    """XADD -> XREAD on the same Redis, at the same rate: what the bus alone costs here."""
    writer, reader = Redis.from_url(redis_url), Redis.from_url(redis_url)
    latencies: list[float] = []
    stream = "bench:baseline"
    n = int(RATE * min(SECONDS, 5))
    last = "$"

    async def read() -> None:
        nonlocal last
        while len(latencies) < n:
            got: Any = await reader.xread({stream: last}, count=100, block=1000)
            for _, entries in got or []:
                for entry_id, fields in entries:
                    last = entry_id
                    latencies.append(time.time() * 1000 - float(fields[b"ts"]))

    task = asyncio.create_task(read())
    await asyncio.sleep(0.2)
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await writer.xadd(stream, {"ts": str(time.time() * 1000)})
    await asyncio.wait_for(task, 30)
    await writer.aclose()
    await reader.aclose()
    return {"messages": n, "p50_ms": pct(latencies, 0.5), "p99_ms": pct(latencies, 0.99)}


async def run(
    order_apis: list[str], stream_api: str, redis_url: str, database_url: str, pids: dict[str, int]
) -> dict[str, Any]:
    tokens = await setup(database_url, order_apis[0])
    result: dict[str, Any] = {}
    if IDLE:
        await asyncio.sleep(1.0)
        rss0 = rss(pids["sockets"])
        t0 = time.perf_counter()
        socks = await open_sockets(stream_api, tokens[0], IDLE)
        opened_s = time.perf_counter() - t0
        await asyncio.sleep(2.0)
        rss1 = rss(pids["sockets"])
        result["idle"] = {
            "connections": len(socks),
            "open_seconds": opened_s,
            "rss_before_mib": rss0 / 2**20,
            "rss_after_mib": rss1 / 2**20,
            "kib_per_connection": (rss1 - rss0) / 1024 / max(len(socks), 1),
        }
        print(json.dumps({"idle": result["idle"]}), flush=True)
        await asyncio.gather(*(ws.close() for ws in socks), return_exceptions=True)
        await asyncio.sleep(2.0)
    # the sockets' users place no orders (their own order events would add to their feeds)
    order_tokens = tokens[CLIENT_PROCS:] or tokens
    result["hot"] = await hot_market(
        order_apis, stream_api, tokens[:CLIENT_PROCS], order_tokens, pids, database_url
    )
    print(json.dumps({"hot": result["hot"]}), flush=True)
    result["bus_baseline"] = await bus_baseline(redis_url)
    print(json.dumps({"baseline": result["bus_baseline"]}), flush=True)
    return result


def main() -> None:
    common = {
        "RATE_LIMIT_ENABLED": "false",
        "STREAM_MAX_CONNECTIONS": str(max(IDLE, HOT) + 100),
        "DB_POOL_SIZE": "10",
    }
    if TICK is not None:
        common["STREAM_TICK_SECONDS"] = TICK
    with stack() as s, contextlib.ExitStack() as procs:
        port = devstack.free_port()
        api = f"http://127.0.0.1:{port}"
        orders = procs.enter_context(
            pull_api(s, port, **common, API_WORKERS=str(ORDER_WORKERS if LAYOUT == "split" else 1))
        )
        pids = {"orders": orders.pid}
        stream_api = api
        if LAYOUT == "split":
            port2 = devstack.free_port()
            sockets = procs.enter_context(
                pull_api(s, port2, **common, API_WORKERS=str(SOCKET_WORKERS))
            )
            stream_api = f"http://127.0.0.1:{port2}"
            pids["sockets"] = sockets.pid
        else:
            pids["sockets"] = orders.pid
        result = asyncio.run(run([api], stream_api, s.redis_url, s.database_url, pids))
    result["machine"] = machine()
    result["settings"] = {
        "idle": IDLE,
        "hot": HOT,
        "rate": RATE,
        "seconds": SECONDS,
        "order_connections": ORDER_CONNS,
        "order_api_workers": ORDER_WORKERS,
        "layout": LAYOUT,
        "client_processes": CLIENT_PROCS,
        "stream_tick_seconds": TICK or "default (0.05)",
        "socket_api_workers": SOCKET_WORKERS,
    }
    result["note"] = "shared 2-core machine, other sessions' work running"
    print(write(os.environ.get("BENCH_OUT", "stream"), result))


if __name__ == "__main__":
    main()
