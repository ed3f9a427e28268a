"""Live-feed benchmark: idle subscribers' memory and a hot market's commit -> client latency.

Run: `uv run python -m bench.stream`. Everything runs on this machine in one run: embedded
PostgreSQL/Redis/Temporal, real `pull api` processes (1 uvicorn worker each, rate limits off)
and the clients (`websockets`, in BENCH_CLIENT_PROCS processes). The machine is shared with
other work, so figures are noisy; the baseline is taken in the same run.

Layout (BENCH_LAYOUT): `split` (default) = one `pull api` takes the orders, another holds the
sockets (how it deploys: the stream paths routed to their own Deployment, see
docs/realtime.md); `shared` = one process does both.

1. Idle: BENCH_IDLE app-stream WebSockets (`/api/v1/stream?markets=<one market>`), opened and
   held; the socket process's RSS before and after, divided by the connections.
2. Hot market: BENCH_HOT app-stream sockets on one market while orders arrive at BENCH_RATE per
   second for BENCH_SECONDS: crossing and resting limit orders through the public
   `POST /api/v1/orders/batch`, BENCH_BATCH orders per request (each order is its own
   transaction and book event: a real committed book change; a single `POST /api/v1/orders`
   costs ~20 ms of API CPU here, so one process cannot offer 200/s that way). Each client
   timestamps every `book_delta`; latency is receive time minus the event's `ts` (the earliest
   commit in the tick's batch, taken in the committing transaction, so it includes the commit).
   Messages/s out is the socket process's `stream_messages_sent_total` over the run; CPU
   seconds per process come from psutil.
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
import time
import uuid
from typing import Any

import httpx
import orjson
import psutil
import websockets
from redis.asyncio import Redis

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
BATCH = int(os.environ.get("BENCH_BATCH", "20"))
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
    """One client process: `n` sockets on the hot market; reports latencies when told."""

    async def main() -> None:
        socks = await open_sockets(api, token, n)
        ready.set()
        latencies: list[float] = []
        received = 0

        async def listen(ws: Any) -> None:
            nonlocal received
            with contextlib.suppress(websockets.ConnectionClosed):
                async for raw in ws:
                    now = time.time() * 1000
                    received += 1
                    if raw.startswith('{"type":"book_delta"'):
                        latencies.append(now - orjson.loads(raw)["ts"])

        tasks = [asyncio.create_task(listen(ws)) for ws in socks]
        await asyncio.to_thread(stop.wait)  # a process-shared event: wait in a thread
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        out.put({"latencies": latencies, "received": received})
        await asyncio.gather(*(ws.close() for ws in socks), return_exceptions=True)

    asyncio.run(main())


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        t = psutil.Process(pid).cpu_times()
        out[name] = t.user + t.system
    return out


async def hot_market(
    order_apis: list[str], stream_api: str, tokens: list[str], pids: dict[str, int]
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
    rng = random.Random(7)
    placed = failed = 0
    batch_ms: list[float] = []
    before = sent_total(stream_api)
    cpu0 = cpu_seconds(pids)
    load0 = os.getloadavg()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    clients = [httpx.AsyncClient(base_url=u, timeout=60, limits=limits) for u in order_apis]

    async def batch(k: int) -> None:
        nonlocal placed, failed
        orders = []
        for _ in range(BATCH):
            side = rng.choice(["yes", "no"])
            orders.append(
                {
                    "ticker": TICKER,
                    "side": side,
                    "action": "buy",
                    "count": rng.randint(1, 3),
                    f"{side}_price": rng.randint(45, 55),
                    "time_in_force": "good_till_canceled",
                }
            )
        t0 = time.perf_counter()
        try:
            r = await clients[k % len(clients)].post(
                "/api/v1/orders/batch",
                json={"orders": orders},
                headers={"Authorization": f"Bearer {tokens[k % len(tokens)]}"},
            )
        except httpx.HTTPError:  # the API did not keep up with the offered rate
            failed += BATCH
            return
        batch_ms.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 201:
            failed += BATCH
            return
        for item in r.json()["orders"]:
            if item.get("error"):
                failed += 1
            else:
                placed += 1

    start = time.perf_counter()
    tasks = []
    n = max(1, int(RATE * SECONDS / BATCH))
    for i in range(n):
        delay = start + i * BATCH / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(batch(i)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    cpu1 = cpu_seconds(pids)
    sent = sent_total(stream_api) - before
    load1 = os.getloadavg()
    for c in clients:
        await c.aclose()
    await asyncio.sleep(2.0)  # let the last deltas arrive
    stop.set()
    latencies: list[float] = []
    received = 0
    for _ in procs:
        part = await asyncio.to_thread(out.get, True, 120)
        latencies += part["latencies"]
        received += part["received"]
    for p in procs:
        p.join(30)
    return {
        "layout": LAYOUT,
        "subscribers": HOT,
        "client_processes": CLIENT_PROCS,
        "orders_offered": n * BATCH,
        "orders_offered_per_s": RATE,
        "orders_per_request": BATCH,
        "orders_placed": placed,
        "orders_failed": failed,
        "order_rate_achieved": placed / elapsed,
        "batch_http_p50_ms": pct(batch_ms, 0.5),
        "batch_http_p99_ms": pct(batch_ms, 0.99),
        "deltas_received": len(latencies),
        "messages_received": received,
        "commit_to_client_p50_ms": pct(latencies, 0.5),
        "commit_to_client_p99_ms": pct(latencies, 0.99),
        "commit_to_client_max_ms": max(latencies) if latencies else float("nan"),
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
        proc = psutil.Process(pids["sockets"])
        await asyncio.sleep(1.0)
        rss0 = proc.memory_info().rss
        t0 = time.perf_counter()
        socks = await open_sockets(stream_api, tokens[0], IDLE)
        opened_s = time.perf_counter() - t0
        await asyncio.sleep(2.0)
        rss1 = proc.memory_info().rss
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
    result["hot"] = await hot_market(order_apis, stream_api, tokens, pids)
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
        orders = procs.enter_context(pull_api(s, port, **common))
        pids = {"orders": orders.pid}
        stream_api = api
        if LAYOUT == "split":
            port2 = devstack.free_port()
            sockets = procs.enter_context(pull_api(s, port2, **common))
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
        "batch": BATCH,
        "layout": LAYOUT,
        "client_processes": CLIENT_PROCS,
        "stream_tick_seconds": TICK or "default (0.05)",
    }
    result["note"] = "shared 2-core machine, other sessions' work running"
    print(write(os.environ.get("BENCH_OUT", "stream"), result))


if __name__ == "__main__":
    main()
