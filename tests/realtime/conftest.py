"""Live-feed test helpers: real `pull api` processes (two, like a deployment), traders with
registered Kalshi API keys, and a WebSocket client written with the `websockets` library only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import Services, start_api_process, stop_process
from tests.exchange.conftest import market_factory, trader  # noqa: F401  (fixtures)
from tests.exchange.kalshi_support import kalshi_headers, new_key, register_key

WS_PATH = "/trade-api/ws/v2"


@pytest.fixture(scope="module")
def two_apis(services: Services) -> Iterator[list[str]]:
    """Two API processes on the same database and Redis (rate limits off: the tests here
    pace themselves)."""
    procs = [start_api_process(services, RATE_LIMIT_ENABLED="false") for _ in range(2)]
    yield [url for _, url in procs]
    for proc, _ in procs:
        stop_process(proc)


@dataclass
class KalshiUser:
    user: Any
    key_id: str
    key: rsa.RSAPrivateKey

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(str(self.user.id))

    def ws_headers(self) -> dict[str, str]:
        return kalshi_headers(self.key, self.key_id, "GET", WS_PATH)

    def rest_headers(self, method: str, path: str) -> dict[str, str]:
        return kalshi_headers(self.key, self.key_id, method, path)


async def kalshi_user(
    client: httpx.AsyncClient, make_trader: Any, cents: int = 1_000_000
) -> KalshiUser:
    user = await make_trader(cents=cents)
    key = new_key()
    return KalshiUser(user, await register_key(client, user.headers, key), key)


def ws_url(http_url: str, path: str = WS_PATH) -> str:
    return http_url.replace("http://", "ws://") + path


async def connect(http_url: str, who: KalshiUser) -> Any:
    return await websockets.connect(
        ws_url(http_url), additional_headers=who.ws_headers(), open_timeout=20
    )


async def command(ws: Any, cid: int, cmd: str, params: dict[str, Any] | None = None) -> None:
    body: dict[str, Any] = {"id": cid, "cmd": cmd}
    if params is not None:
        body["params"] = params
    await ws.send(orjson.dumps(body).decode())


async def recv(ws: Any, timeout: float = 20) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    value = orjson.loads(raw)
    assert isinstance(value, dict)
    return value


async def recv_until(ws: Any, kind: str, timeout: float = 20) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        msg = await recv(ws, max(left, 0.01))
        if msg.get("type") == kind:
            return msg


class KalshiBook:
    """A local order book kept the way Kalshi's docs say: snapshot, then every delta, with
    the subscription's seq checked to never skip."""

    def __init__(self) -> None:
        self.yes: dict[str, float] = {}
        self.no: dict[str, float] = {}
        self.seq: dict[int, int] = {}
        self.snapshots = 0

    def apply(self, msg: dict[str, Any]) -> bool:
        kind = msg.get("type")
        if kind not in ("orderbook_snapshot", "orderbook_delta"):
            return False
        sid, seq = msg["sid"], msg["seq"]
        expected = self.seq.get(sid, 0) + 1
        assert seq == expected, f"seq skipped on sid {sid}: {seq} after {expected - 1}"
        self.seq[sid] = seq
        body = msg["msg"]
        if kind == "orderbook_snapshot":
            self.snapshots += 1
            self.yes = {p: float(c) for p, c in body.get("yes_dollars_fp", [])}
            self.no = {p: float(c) for p, c in body.get("no_dollars_fp", [])}
            return True
        side = self.yes if body["side"] == "yes" else self.no
        price = body["price_dollars"]
        side[price] = side.get(price, 0.0) + float(body["delta_fp"])
        assert side[price] >= 0, body
        if side[price] == 0:
            del side[price]
        return True

    def levels(self) -> dict[str, list[tuple[str, float]]]:
        return {"yes": sorted(self.yes.items()), "no": sorted(self.no.items())}


def rest_levels(body: dict[str, Any]) -> dict[str, list[tuple[str, float]]]:
    fp = body["orderbook_fp"]
    return {
        "yes": sorted((p, float(c)) for p, c in fp.get("yes_dollars") or []),
        "no": sorted((p, float(c)) for p, c in fp.get("no_dollars") or []),
    }
