"""Live-feed benchmark: idle subscribers' memory and a hot market's commit -> client latency.

Run: `uv run python -m bench.stream`. Everything runs on this machine in one run: embedded
PostgreSQL/Redis/Temporal, one real `pull api` process (1 uvicorn worker, rate limits off) and
the clients (one asyncio process with `websockets`). The machine is shared with other work, so
figures are noisy; the baseline is taken in the same run.

1. Idle: BENCH_IDLE app-stream WebSockets (`/api/v1/stream?markets=<one market>`), opened and
   held; the API process's RSS before and after, divided by the connections.
2. Hot market: BENCH_HOT of those sockets stay subscribed to one market while orders arrive at
   BENCH_RATE per second for BENCH_SECONDS (crossing and resting limit orders through
   `POST /api/v1/orders`). Each client timestamps every `book_delta` it receives; latency is
   receive time minus the event's `ts` (taken in the committing transaction, so it includes
   the commit). Messages/s out is the server's `stream_messages_sent_total` over the run.
3. Baseline (same run): the bus alone, XADD -> XREAD on the same Redis at BENCH_RATE/s.

Results go to bench/results/stream.json; docs/performance.md quotes them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
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


async def hot_market(api: str, tokens: list[str], socks: list[Any]) -> dict[str, Any]:
    latencies: list[float] = []
    received = 0
    stop = asyncio.Event()

    async def listen(ws: Any) -> None:
        nonlocal received
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            except websockets.ConnectionClosed:
                return
            now = time.time() * 1000
            msg = orjson.loads(raw)
            received += 1
            if msg.get("type") == "book_delta":
                latencies.append(now - msg["ts"])

    listeners = [asyncio.create_task(listen(ws)) for ws in socks]
    rng = random.Random(7)
    placed = failed = 0
    order_ms: list[float] = []
    before = sent_total(api)
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=api, timeout=30, limits=limits) as http:

        async def order() -> None:
            nonlocal placed, failed
            side = rng.choice(["yes", "no"])
            body = {
                "ticker": TICKER,
                "side": side,
                "action": "buy",
                "count": rng.randint(1, 3),
                f"{side}_price": rng.randint(45, 55),
                "time_in_force": "good_till_canceled",
            }
            t0 = time.perf_counter()
            try:
                r = await http.post(
                    "/api/v1/orders",
                    json=body,
                    headers={"Authorization": f"Bearer {rng.choice(tokens)}"},
                )
            except httpx.HTTPError:  # the API did not keep up with the offered rate
                failed += 1
                return
            order_ms.append((time.perf_counter() - t0) * 1000)
            if r.status_code == 201:
                placed += 1
            else:
                failed += 1

        start = time.perf_counter()
        tasks = []
        n = int(RATE * SECONDS)
        for i in range(n):
            delay = start + i / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(order()))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    await asyncio.sleep(2.0)  # let the last deltas arrive
    stop.set()
    await asyncio.gather(*listeners)
    out = sent_total(api) - before
    return {
        "subscribers": len(socks),
        "orders_sent": n,
        "orders_placed": placed,
        "orders_failed": failed,
        "order_rate_achieved": placed / elapsed,
        "order_http_p50_ms": pct(order_ms, 0.5),
        "order_http_p99_ms": pct(order_ms, 0.99),
        "deltas_received": len(latencies),
        "messages_received": received,
        "commit_to_client_p50_ms": pct(latencies, 0.5),
        "commit_to_client_p99_ms": pct(latencies, 0.99),
        "commit_to_client_max_ms": max(latencies) if latencies else float("nan"),
        "server_messages_out_per_s": out / (elapsed + 2.0),
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


async def run(api: str, redis_url: str, database_url: str, pid: int) -> dict[str, Any]:
    tokens = await setup(database_url, api)
    proc = psutil.Process(pid)
    await asyncio.sleep(1.0)
    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    socks = await open_sockets(api, tokens[0], IDLE)
    opened_s = time.perf_counter() - t0
    await asyncio.sleep(2.0)
    rss1 = proc.memory_info().rss
    idle = {
        "connections": len(socks),
        "open_seconds": opened_s,
        "rss_before_mib": rss0 / 2**20,
        "rss_after_mib": rss1 / 2**20,
        "kib_per_connection": (rss1 - rss0) / 1024 / max(len(socks), 1),
    }
    print(json.dumps({"idle": idle}), flush=True)
    hot_socks, rest = socks[:HOT], socks[HOT:]
    # the hot phase measures BENCH_HOT subscribers
    await asyncio.gather(*(ws.close() for ws in rest), return_exceptions=True)
    hot = await hot_market(api, tokens, hot_socks)
    print(json.dumps({"hot": hot}), flush=True)
    await asyncio.gather(*(ws.close() for ws in hot_socks), return_exceptions=True)
    baseline = await bus_baseline(redis_url)
    print(json.dumps({"baseline": baseline}), flush=True)
    return {"idle": idle, "hot": hot, "bus_baseline": baseline}


def main() -> None:
    with stack() as s:
        port = devstack.free_port()
        api = f"http://127.0.0.1:{port}"
        with pull_api(
            s,
            port,
            RATE_LIMIT_ENABLED="false",
            STREAM_MAX_CONNECTIONS=str(IDLE + 100),
            DB_POOL_SIZE="10",
        ) as proc:
            result = asyncio.run(run(api, s.redis_url, s.database_url, proc.pid))
    result["machine"] = machine()
    result["settings"] = {"idle": IDLE, "hot": HOT, "rate": RATE, "seconds": SECONDS}
    result["note"] = "shared 2-core machine, other sessions' work running"
    print(write("stream", result))


if __name__ == "__main__":
    main()
