"""Kalshi's current official SDKs (kalshi_python_sync and kalshi_python_async 3.34.0, the ones
Kalshi's docs point to) run the trading sequence, unchanged, against a real `pull api`: markets,
order book, create (V2 order entry), fills, positions, cancel, balance, settlement. The SDKs
need Python >= 3.13, so they run in a side virtualenv (made here with uv from
tests/exchange/kalshi-sdk-v3.txt) as a child process; every response is parsed by the SDK's
own pydantic models, which raise on any missing or mistyped field."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.exchange import service
from pull.kit.db import session_scope
from tests.conftest import REPO, Services, UserFactory, start_api_process, stop_process
from tests.exchange.kalshi_support import make_structure, new_key, private_pem, register_key

HERE = Path(__file__).parent
VENV = REPO / ".venv-kalshi-v3"
REQUIREMENTS = HERE / "kalshi-sdk-v3.txt"


def _python313() -> str:
    found = sorted(Path.home().glob(".pyenv/versions/3.1[3-9]*/bin/python3.1[3-9]"))
    for candidate in [*map(str, found), "/usr/bin/python3.13", shutil.which("python3.13")]:
        if candidate and Path(candidate).exists() and "shims" not in candidate:
            return candidate
    pytest.fail("Kalshi's current SDKs need Python >= 3.13; none found (pyenv or python3.13)")


@pytest.fixture(scope="module")
def v3_python() -> str:
    python = VENV / "bin/python"
    marker = VENV / ".requirements"
    wanted = REQUIREMENTS.read_text()
    if not python.exists() or not marker.exists() or marker.read_text() != wanted:
        uv = shutil.which("uv") or "uv"
        subprocess.run([uv, "venv", "-q", "--python", _python313(), str(VENV)], check=True)
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(python), "-r", str(REQUIREMENTS)],
            check=True,
        )
        marker.write_text(wanted)
    return str(python)


@pytest.fixture(scope="module")
def trade_server(services: Services) -> Iterator[str]:
    proc, url = start_api_process(services, RATE_LIMIT_ENABLED="false")
    yield url
    stop_process(proc)


def run_sdk(python: str, cfg: dict[str, Any]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    done = subprocess.run(
        [python, str(HERE / "kalshi_v3_client.py")],
        input=json.dumps(cfg),
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out: dict[str, Any] = json.loads(done.stdout)
    return out


async def key_user(client: httpx.AsyncClient, trader: Any) -> dict[str, str]:
    user = await trader(cents=100_000)
    key = new_key()
    return {"key_id": await register_key(client, user.headers, key), "pem": private_pem(key)}


@pytest.mark.parametrize("sdk", ["sync", "async"])
async def test_current_kalshi_sdks_trade_unchanged(
    sdk: str,
    v3_python: str,
    trade_server: str,
    client: httpx.AsyncClient,
    trader: Any,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    series = f"KXV3{sdk.upper()}"
    event, ticker = f"{series}-26", f"{series}-26-A"
    await make_structure(sessionmaker, series, {event: [ticker]})
    alice, bob = await key_user(client, trader), await key_user(client, trader)
    cfg = {
        "sdk": sdk,
        "phase": "trade",
        "url": trade_server,
        "series": series,
        "ticker": ticker,
        "alice": alice,
        "bob": bob,
        "coid": f"v3-{uuid.uuid4().hex[:8]}",
    }
    out = run_sdk(v3_python, cfg)
    assert out["version"] == "3.34.0"
    assert out["markets"] == [ticker] and out["market_status"] == "active"
    assert out["book_before"] == {"yes_dollars": [], "no_dollars": []}
    assert out["placed"]["fill_count"] == "0.00" and out["placed"]["remaining_count"] == "10.00"
    assert out["order"]["status"] == "resting" and out["order"]["client_order_id"] == cfg["coid"]
    assert out["orders"] == [out["placed"]["order_id"]]
    assert out["book_resting"] == {"yes_dollars": [["0.4000", "10.00"]], "no_dollars": []}
    assert out["crossed"]["fill_count"] == "4.00" and out["crossed"]["remaining_count"] == "0.00"
    assert [(f["count_fp"], f["yes_price_dollars"], f["is_taker"]) for f in out["fills"]] == [
        ("4.00", "0.4000", False)
    ]
    assert [p["position_fp"] for p in out["positions"]] == ["4.00"]
    assert out["canceled"]["reduced_by"] == "6.00" and out["after_cancel"] == "canceled"
    assert out["balance"]["balance"] == 100_000 - 160  # 4 contracts at 40 cents
    assert out["trades"] == 1

    admin = await user_factory(admin=True)
    r = await client.post(
        f"/api/admin/markets/{ticker}/resolve", headers=admin.headers, json={"result": "yes"}
    )
    assert r.status_code == 200, r.text
    async with session_scope(sessionmaker) as s:  # as the activity: returns once published
        while not (await service.settle_batch(session=s, ticker=ticker)).done:
            pass
        await service.finalize_settlement(session=s, ticker=ticker)
    settled = run_sdk(v3_python, {**cfg, "phase": "settle"})
    assert [
        (x["market_result"], x["yes_count_fp"], x["revenue"]) for x in settled["settlements"]
    ] == [("yes", "4.00", 400)]
    assert settled["balance"] == 100_000 - 160 + 400
