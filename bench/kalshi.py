"""Kalshi-compatible Trade API benchmark: signed order placement next to the app API's.

Run: `uv run python -m bench.kalshi` (needs wrk). Everything runs on this machine in one run:
an embedded PostgreSQL/Redis/Temporal, one real `pull api` process (1 uvicorn worker, rate
limits off so the handlers themselves are measured) and the load generators.

Throughput (wrk, BENCH_CONNECTIONS connections for BENCH_SECONDS each, after a warm-up,
BENCH_ROUNDS rounds of all scenarios in turn; the median round of each is reported): the
same random limit buys (YES or NO, 1-5 contracts at 45-55 cents, on one of 50 open markets, by
one of 64 funded KYC'd users) sent to
  - the app API, `POST /api/v1/orders` with a bearer token (the baseline), and
  - the Trade API, `POST /trade-api/v2/portfolio/orders` signed with the user's RSA key.
Kalshi signs timestamp + method + path (not the body), so each user's headers are signed once
just before the run and stay valid for the 60 s window; the server verifies the RSA-PSS
signature and looks the key up on every request, which is what is measured. Public reads of
one market through both APIs are measured the same way.

Client path (sequential, one client): ORDERS_SEQUENTIAL orders through Kalshi's own SDK
(kalshi-python, which re-parses its PEM private key and signs on every call) next to the same
orders through httpx with a bearer token.

Crypto, in-process: RSA-2048 PSS verification and signing per operation (cryptography), and
the server's whole signed-request check (`identity.service.authenticate_signed`: timestamp,
key lookup in PostgreSQL, verification) per request.

Results go to bench/results/kalshi.json; the numbers are quoted in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.common import Result, machine, pull_api, stack, table, write, wrk
from pull import devstack
from pull.exchange import service
from pull.exchange.schemas import EventCreate, MarketCreate, SeriesCreate
from pull.identity import api_keys as identity_api_keys
from pull.identity import signing
from pull.kit.db import make_engine, make_sessionmaker
from pull.kyc import service as kyc
from pull.ledger import service as ledger

# Signed headers are made just before each run and Kalshi's window is 60 s: runs stay shorter.
SECONDS = min(int(os.environ.get("BENCH_SECONDS", "10")), 45)
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
ORDERS_SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
USERS = 64
MARKETS = 50
PREFIX = "/trade-api/v2"


class Trader:
    def __init__(self, token: str, user_id: uuid.UUID, key: rsa.RSAPrivateKey) -> None:
        self.token = token
        self.user_id = user_id
        self.key = key
        self.key_id = ""

    @property
    def private_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def signed(self, method: str, path: str) -> dict[str, str]:
        ts = str(int(time.time() * 1000))
        return {
            signing.HEADER_KEY: self.key_id,
            signing.HEADER_TIMESTAMP: ts,
            signing.HEADER_SIGNATURE: signing.sign(self.key, ts, method, path),
        }


async def setup(database_url: str, api: str) -> tuple[list[Trader], list[str]]:
    engine = make_engine(database_url, pool_size=4, max_overflow=0)
    maker = make_sessionmaker(engine)
    traders: list[Trader] = []
    now = dt.datetime.now(dt.UTC)
    tickers = [f"KXKB-1-M{i:02d}" for i in range(MARKETS)]
    try:
        async with maker() as s, s.begin():
            await service.create_series(
                session=s, data=SeriesCreate(ticker="KXKB", title="Kalshi bench")
            )
            await service.create_event(
                session=s, data=EventCreate(ticker="KXKB-1", series_ticker="KXKB", title="Bench")
            )
            for t in tickers:
                await service.create_market(
                    session=s,
                    data=MarketCreate(
                        ticker=t,
                        event_ticker="KXKB-1",
                        title=t,
                        open_time=now - dt.timedelta(minutes=1),
                        close_time=now + dt.timedelta(days=1),
                    ),
                )
                await service.set_market_status(session=s, ticker=t, action="open")
        async with httpx.AsyncClient(base_url=api, timeout=60) as c:
            for i in range(USERS):
                r = await c.post(
                    "/api/auth/register",
                    json={
                        "email": f"kbench-{i}-{uuid.uuid4().hex[:6]}@example.com",
                        "password": "Correct-Horse-9-Battery",
                    },
                )
                r.raise_for_status()
                body = r.json()
                uid = uuid.UUID(body["user"]["id"])
                trader = Trader(
                    body["access_token"],
                    uid,
                    rsa.generate_private_key(public_exponent=65537, key_size=2048),
                )
                pem = signing.public_pem(trader.key.public_key())
                k = await c.post(
                    "/api/v1/api-keys",
                    headers={"Authorization": f"Bearer {trader.token}"},
                    json={"name": "bench", "public_key_pem": pem},
                )
                k.raise_for_status()
                trader.key_id = k.json()["key_id"]
                traders.append(trader)
                async with maker() as s, s.begin():
                    await kyc.set_tier(
                        session=s, user_id=uid, tier="accredited", actor_id=None, note="bench"
                    )
                    await ledger.transfer(
                        session=s,
                        idempotency_key=f"kbench:{uid}",
                        kind="bench.deposit",
                        legs=[
                            ledger.Leg(ledger.system_account("bank_clearing"), -100_000_000),
                            ledger.Leg(ledger.user_account(uid, "cash"), 100_000_000),
                        ],
                    )
    finally:
        await engine.dispose()
    return traders, tickers


LUA = """
local headers = {%(headers)s}
local tickers = {%(tickers)s}
local path = "%(path)s"
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
request = function()
  local h = headers[math.random(#headers)]
  local ticker = tickers[math.random(#tickers)]
  local side = "yes"
  if math.random(2) == 1 then side = "no" end
  local body = string.format(
    '{"ticker":"%%s","side":"%%s","action":"buy","count":%%d,"type":"limit","%%s_price":%%d}',
    ticker, side, math.random(1, 5), side, math.random(45, 55))
  return wrk.format("POST", path, h, body)
end
"""


def _lua_headers(headers: dict[str, str]) -> str:
    items = ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    return "{" + items + "}"


def order_script(
    path: Path, url_path: str, headers: list[dict[str, str]], tickers: list[str]
) -> Path:
    path.write_text(
        LUA
        % {
            "headers": ", ".join(_lua_headers(h) for h in headers),
            "tickers": ", ".join(json.dumps(t) for t in tickers),
            "path": url_path,
        }
    )
    return path


def get_script(path: Path, headers: dict[str, str]) -> Path:
    lines = [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def crypto_costs(n: int = 2000) -> dict[str, float]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = signing.public_pem(key.public_key())
    message_ts = str(int(time.time() * 1000))
    sig = signing.sign(key, message_ts, "POST", PREFIX + "/portfolio/orders")
    message = message_ts + "POST" + PREFIX + "/portfolio/orders"
    signing.verify(pem, sig, message)  # warm the parsed-key cache
    start = time.perf_counter()
    for _ in range(n):
        signing.verify(pem, sig, message)
    verify_us = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for _ in range(n // 10):
        signing.sign(key, message_ts, "POST", PREFIX + "/portfolio/orders")
    sign_us = (time.perf_counter() - start) / (n // 10) * 1e6
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    start = time.perf_counter()
    for _ in range(n // 10):
        serialization.load_pem_private_key(private, password=None)
    load_us = (time.perf_counter() - start) / (n // 10) * 1e6
    return {
        "rsa2048_pss_verify_us": verify_us,
        "rsa2048_pss_sign_us": sign_us,
        "pem_private_key_parse_us": load_us,
    }


async def signed_check_cost(database_url: str, trader: Trader, n: int = 500) -> dict[str, float]:
    """The server's whole check of a signed request, in-process: timestamp, key row, verify."""
    engine = make_engine(database_url, pool_size=2, max_overflow=0)
    maker = make_sessionmaker(engine)
    path = PREFIX + "/portfolio/orders"
    headers = trader.signed("POST", path)
    timings: list[float] = []
    try:
        for _ in range(n):
            async with maker() as s:
                start = time.perf_counter()
                await identity_api_keys.authenticate_signed(
                    session=s,
                    key_id=headers[signing.HEADER_KEY],
                    timestamp=headers[signing.HEADER_TIMESTAMP],
                    signature=headers[signing.HEADER_SIGNATURE],
                    method="POST",
                    path=path,
                )
                timings.append(time.perf_counter() - start)
                await s.commit()
    finally:
        await engine.dispose()
    return {
        "authenticate_signed_p50_ms": statistics.median(timings) * 1000,
        "authenticate_signed_mean_ms": statistics.fmean(timings) * 1000,
    }


def sequential(api: str, traders: list[Trader], tickers: list[str]) -> dict[str, Any]:
    """One client placing orders one after another: Kalshi's SDK vs httpx + bearer."""
    import kalshi_python
    from kalshi_python.configuration import Configuration

    rng = random.Random(7)
    trader = traders[0]
    config = Configuration(host=api + PREFIX)
    config.api_key_id = trader.key_id
    config.private_key_pem = trader.private_pem
    sdk: Any = kalshi_python.KalshiClient(config)  # type: ignore[no-untyped-call]

    def order() -> dict[str, Any]:
        side = rng.choice(["yes", "no"])
        return {
            "ticker": rng.choice(tickers),
            "side": side,
            "action": "buy",
            "count": rng.randint(1, 5),
            "type": "limit",
            f"{side}_price": rng.randint(45, 55),
        }

    out: dict[str, Any] = {}
    for _ in range(10):
        sdk.create_order(**order())
    start = time.perf_counter()
    for _ in range(ORDERS_SEQUENTIAL):
        sdk.create_order(**order())
    sdk_s = time.perf_counter() - start
    out["kalshi_sdk_orders_per_s"] = ORDERS_SEQUENTIAL / sdk_s
    out["kalshi_sdk_ms_per_order"] = sdk_s / ORDERS_SEQUENTIAL * 1000

    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {trader.token}"}) as c:
        for _ in range(10):
            c.post("/api/v1/orders", json=order()).raise_for_status()
        start = time.perf_counter()
        for _ in range(ORDERS_SEQUENTIAL):
            c.post("/api/v1/orders", json=order()).raise_for_status()
        app_s = time.perf_counter() - start
    out["app_api_orders_per_s"] = ORDERS_SEQUENTIAL / app_s
    out["app_api_ms_per_order"] = app_s / ORDERS_SEQUENTIAL * 1000
    return out


def scenarios(api: str, tmp: Path, traders: list[Trader], tickers: list[str]) -> list[Any]:
    """(name, url, script) of each measured scenario; signed headers are made fresh here."""
    bearer = [
        {"Authorization": f"Bearer {t.token}", "Content-Type": "application/json"} for t in traders
    ]
    path = PREFIX + "/portfolio/orders"
    signed = [{**t.signed("POST", path), "Content-Type": "application/json"} for t in traders]
    balance = PREFIX + "/portfolio/balance"
    ticker = tickers[0]
    return [
        (
            "app API `POST /api/v1/orders` (bearer token; baseline)",
            api + "/api/v1/orders",
            order_script(tmp / "app.lua", "/api/v1/orders", bearer, tickers),
        ),
        (
            "Trade API `POST /trade-api/v2/portfolio/orders` (RSA-PSS signed)",
            api + path,
            order_script(tmp / "kalshi.lua", path, signed, tickers),
        ),
        (
            "app API `GET /api/v1/markets/{ticker}` (bearer token)",
            f"{api}/api/v1/markets/{ticker}",
            get_script(tmp / "app_get.lua", bearer[1]),
        ),
        (
            "Trade API `GET /trade-api/v2/markets/{ticker}` (public)",
            f"{api}{PREFIX}/markets/{ticker}",
            None,
        ),
        (
            "Trade API `GET /trade-api/v2/portfolio/balance` (RSA-PSS signed)",
            api + balance,
            get_script(tmp / "balance.lua", traders[2].signed("GET", balance)),
        ),
    ]


def main() -> None:
    """ROUNDS rounds, each running every scenario once in turn, so that background load on the
    shared machine hits all scenarios alike; the table shows each scenario's median round."""
    rounds: dict[str, list[Result]] = {}
    extra: dict[str, Any] = {"crypto": crypto_costs()}
    with stack() as s:
        port = devstack.free_port()
        with pull_api(s, port, RATE_LIMIT_ENABLED="false"):
            api = f"http://127.0.0.1:{port}"
            traders, tickers = asyncio.run(setup(s.database_url, api))
            extra["signed_check"] = asyncio.run(signed_check_cost(s.database_url, traders[0]))
            tmp = Path(tempfile.mkdtemp(prefix="kbench-"))
            warm = scenarios(api, tmp, traders, tickers)
            for _, url, script in warm[:2]:
                wrk("warm-up", url, seconds=2, connections=8, script=script)
            for _ in range(ROUNDS):
                for name, url, script in scenarios(api, tmp, traders, tickers):
                    r = wrk(name, url, seconds=SECONDS, connections=CONNECTIONS, script=script)
                    rounds.setdefault(name, []).append(r)
            extra["sequential"] = sequential(api, traders, tickers)
    results = [sorted(rs, key=lambda r: r.requests_per_s)[len(rs) // 2] for rs in rounds.values()]
    payload = {
        "machine": machine(),
        "seconds": SECONDS,
        "connections": CONNECTIONS,
        "rounds": ROUNDS,
        "users": USERS,
        "markets": MARKETS,
        "results": results,
        "all_rounds": rounds,
        **extra,
    }
    out = write("kalshi", payload)
    print(table(results, results[0]))
    print(json.dumps(extra, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
