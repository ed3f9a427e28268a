"""The concurrent chaos run of tests/exchange/test_book_commands.py at full speed for 60 s.

Run: `uv run python -m bench.chaos` (`BENCH_SECONDS`, `BENCH_CLIENTS`). Embedded PostgreSQL,
Redis and Temporal; two `pull api` processes (2 workers each, rate limits off) on the same
database; CLIENTS traders per surface (app API bearer, Trade API RSA-PSS signed), spread over
both processes, each sending without pause the test's random mix (batches across markets in
random order, single orders, cancels, batch cancels, decreases, amends, replays) for SECONDS.
Then every invariant of docs/exchange.md is checked against the database (the test's
`check_invariants`): book never crossed, cached top of book true, YES = NO open interest,
escrow = 100 per pair, sell reservations, holds = resting collateral, no negative balance,
trial balance zero. Not part of the CI suite (it is a load run); results in
bench/results/chaos.json.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys
import time
import uuid
from types import SimpleNamespace
from typing import Any

import httpx
from tests.exchange.conftest import check_invariants
from tests.exchange.kalshi_support import Bot, new_key
from tests.exchange.test_book_commands import Client

from bench.common import machine, pull_api, stack, write
from bench.orders import _market
from pull import devstack
from pull.identity import signing
from pull.kit.db import make_engine, make_sessionmaker
from pull.kyc import service as kyc
from pull.ledger import service as ledger

SECONDS = int(os.environ.get("BENCH_SECONDS", "60"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "12"))  # per surface
MARKETS = 4


async def _traders(maker: Any, api: str, n: int) -> list[Any]:
    out = []
    async with httpx.AsyncClient(base_url=api, timeout=60) as c:
        for i in range(n):
            r = await c.post(
                "/api/auth/register",
                json={
                    "email": f"chaos-{i}-{uuid.uuid4().hex[:6]}@example.com",
                    "password": "Correct-Horse-9-Battery",
                },
            )
            r.raise_for_status()
            body = r.json()
            uid = uuid.UUID(body["user"]["id"])
            headers = {"Authorization": f"Bearer {body['access_token']}"}
            async with maker() as s, s.begin():
                await kyc.set_tier(
                    session=s, user_id=uid, tier="accredited", actor_id=None, note=""
                )
                await ledger.transfer(
                    session=s,
                    idempotency_key=f"chaos:{uid}",
                    kind="bench.deposit",
                    legs=[
                        ledger.Leg(ledger.system_account("bank_clearing"), -60_000),
                        ledger.Leg(ledger.user_account(uid, "cash"), 60_000),
                    ],
                )
            key = new_key()
            k = await c.post(
                "/api/v1/api-keys",
                headers=headers,
                json={"name": "chaos", "public_key_pem": signing.public_pem(key.public_key())},
            )
            k.raise_for_status()
            bot = Bot(user_id=uid, key_id=k.json()["key_id"], key=key, bearer=headers)
            out.append((SimpleNamespace(id=uid, headers=headers), bot))
    return out


async def run(database_url: str, urls: list[str]) -> dict[str, Any]:
    engine = make_engine(database_url, pool_size=4, max_overflow=0)
    maker = make_sessionmaker(engine)
    try:
        tickers = [f"KXCHAOS-M{i}" for i in range(MARKETS)]
        for t in tickers:
            await _market(maker, t)
        people = await _traders(maker, urls[0], 2 * CLIENTS)
        https = [httpx.AsyncClient(base_url=u, timeout=60) for u in urls]
        clients = [
            Client(https[i % len(https)], user, None if i < CLIENTS else bot, i)
            for i, (user, bot) in enumerate(people)
        ]
        until = time.monotonic() + SECONDS

        async def go(c: Client) -> None:
            while time.monotonic() < until:
                await c.step(tickers)

        started = time.perf_counter()
        await asyncio.gather(*(go(c) for c in clients))
        wall = time.perf_counter() - started
        for h in https:
            await h.aclose()
        statuses = collections.Counter(s for c in clients for s in c.statuses)
        async with maker() as s:
            await check_invariants(s, tickers)  # raises on any broken invariant
        return {
            "seconds": round(wall, 1),
            "requests": sum(statuses.values()),
            "requests_per_s": round(sum(statuses.values()) / wall, 1),
            "statuses": dict(sorted(statuses.items())),
            "server_errors": sum(n for code, n in statuses.items() if code >= 500),
            "invariants": "all held",
        }
    finally:
        await engine.dispose()


def main() -> None:
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    with stack() as s:
        ports = [devstack.free_port(), devstack.free_port()]
        extra = {"RATE_LIMIT_ENABLED": "false", "API_WORKERS": "2"}
        with pull_api(s, ports[0], **extra), pull_api(s, ports[1], **extra):
            out = asyncio.run(run(s.database_url, [f"http://127.0.0.1:{p}" for p in ports]))
    payload = {"machine": machine(), "load_average_before": load, "clients": 2 * CLIENTS, **out}
    path = write("chaos", payload)
    print(json.dumps(payload, indent=2))
    print(f"written to {path}", file=sys.stderr)
    if out["server_errors"]:
        raise SystemExit("server errors during the chaos run")


if __name__ == "__main__":
    main()
