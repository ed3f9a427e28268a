"""Schema-driven fuzzing of the whole OpenAPI, the app API and the Trade API, against a real
`pull api` process: no input may yield a 5xx, and every response must match its documented
schema. Its own CI step (`make fuzz`; skipped unless PULL_FUZZ=1), bounded to about three
minutes: rate limits off, a fresh signed-in user per operation (the fuzzer's own logout or
password change cannot turn the rest into 401s), a fixed seed (hypothesis derandomized).
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from pull.app import create_app
from pull.config import Settings
from pull.exchange.kalshi import PREFIX, create_trade_api
from tests.conftest import Services, create_scratch_database, free_port, spawn, stop_process

pytestmark = pytest.mark.skipif(
    not os.environ.get("PULL_FUZZ"), reason="the fuzz run is its own CI step: make fuzz"
)

EXAMPLES = int(os.environ.get("PULL_FUZZ_EXAMPLES", "3"))
# The whole run (server start included) stays within about three minutes: operations reached
# after the budget is spent are skipped, and the summary says how many.
BUDGET = float(os.environ.get("PULL_FUZZ_BUDGET_SECONDS", "160"))
PASSWORD = "Fuzz-Pass-2026!x"
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]

APP_SCHEMA = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
TRADE_SCHEMA = schemathesis.openapi.from_dict(create_trade_api(FastAPI()).openapi())
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the fixed seed: same cases on every run
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@dataclass
class Tally:
    started: float = 0.0
    cases: int = 0
    operations: int = 0
    skipped: int = 0


tally = Tally()


def _within_budget() -> None:
    if time.monotonic() - tally.started > BUDGET:
        tally.skipped += 1
        pytest.skip(f"fuzz time budget ({BUDGET:.0f} s) spent")
    tally.operations += 1


@pytest.fixture(scope="module")
def fuzz_api(request: pytest.FixtureRequest) -> Iterator[str]:
    """`pull api` (rate limits off, fast hashing) on a seeded scratch database of its own.

    The services come through `getfixturevalue`, so the per-test cleanup of the shared test
    database (which this run does not use) is not run before every operation."""
    services: Services = request.getfixturevalue("services")
    # messaging's routes answer 503 without a homeserver: fuzz them against a real Synapse
    matrix = request.getfixturevalue("matrix")
    tally.started = time.monotonic()
    database_url = create_scratch_database(services, "pull_fuzz")
    port = free_port()
    env = services.env(
        DATABASE_URL=database_url,
        REDIS_URL=services.redis_url.rsplit("/", 1)[0] + "/15",
        TEMPORAL_TASK_QUEUE=f"fuzz-{uuid.uuid4().hex[:8]}",
        PORT=str(port),
        HOST="127.0.0.1",
        RATE_LIMIT_ENABLED="false",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_COST="1024",
        LOG_LEVEL="error",
        MATRIX_HOMESERVER_URL=matrix.url,
        MATRIX_REGISTRATION_SHARED_SECRET=matrix.shared_secret,
    )
    seeded = subprocess.run(
        [sys.executable, "-m", "pull.cli", "seed"], env=env, capture_output=True, timeout=300
    )
    assert seeded.returncode == 0, seeded.stderr
    proc = spawn(["api"], env, services.data_dir / f"fuzz-api-{port}.log")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, "pull api exited"
        try:
            if httpx.get(f"{url}/health/live", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "pull api did not start"
        time.sleep(0.3)
    try:
        yield url
    finally:
        stop_process(proc)


@dataclass
class Account:
    bearer: str
    key_id: str | None = None
    key: rsa.RSAPrivateKey | None = None

    def signed(self, path: str, method: str) -> dict[str, str]:
        assert self.key is not None and self.key_id is not None
        ts = str(int(time.time() * 1000))
        signature = self.key.sign(
            (ts + method.upper() + path).encode(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
            hashes.SHA256(),
        )
        return {
            "KALSHI-ACCESS-KEY": self.key_id,
            "KALSHI-ACCESS-TIMESTAMP": ts,
            "KALSHI-ACCESS-SIGNATURE": base64.b64encode(signature).decode(),
        }


_keys: list[rsa.RSAPrivateKey] = []


def _key() -> rsa.RSAPrivateKey:
    """One RSA key for every fuzz account's API key (generating one per account is slow)."""
    if not _keys:
        _keys.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _keys[0]


def fresh_account(url: str, *, api_key: bool) -> Account:
    """A new user, its email verified through the API (the sandbox message box)."""
    with httpx.Client(base_url=url, timeout=30) as http:
        email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
        r = http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        mail = http.get("/api/v1/sandbox/messages", headers=auth).json()["items"][0]
        token = re.search(r"token=([A-Za-z0-9_\-]+)", mail["body"])
        assert token
        assert http.post("/api/auth/verify-email", json={"token": token.group(1)}).is_success
        account = Account(bearer=auth["Authorization"])
        if api_key:
            key = _key()
            pem = (
                key.public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .decode()
            )
            r = http.post(
                "/api/v1/api-keys", headers=auth, json={"name": "fuzz", "public_key_pem": pem}
            )
            assert r.status_code == 201, r.text
            account.key_id, account.key = r.json()["key_id"], key
        return account


@pytest.fixture
def app_account(fuzz_api: str) -> Account:
    _within_budget()
    return fresh_account(fuzz_api, api_key=False)


@pytest.fixture
def trade_account(fuzz_api: str) -> Account:
    _within_budget()
    return fresh_account(fuzz_api, api_key=True)


_session = requests.Session()


def _run(case: Any, base_url: str, headers: dict[str, str]) -> None:
    tally.cases += 1
    case.call_and_validate(base_url=base_url, session=_session, headers=headers, checks=CHECKS)


@APP_SCHEMA.parametrize()
@FUZZ_SETTINGS
def test_app_api(case: Any, fuzz_api: str, app_account: Account) -> None:
    _run(case, fuzz_api, {"Authorization": app_account.bearer})


@TRADE_SCHEMA.parametrize()
@FUZZ_SETTINGS
def test_trade_api(case: Any, fuzz_api: str, trade_account: Account) -> None:
    path = PREFIX + case.formatted_path
    _run(case, fuzz_api + PREFIX, trade_account.signed(path, case.method))
