"""A new customer's whole journey, as a client that speaks only HTTP sees it.

Real `pull api` and `pull worker` processes on the embedded PostgreSQL, Redis and Temporal, with
the demo market makers loaded by `pull seed`. This file imports nothing of `pull`, runs no SQL
and reads no Redis (a test below checks that): every step goes through the public API, the
verification mail and the SMS code are read from the sandbox message box, the bank account id
from the Link metadata. Balances are checked to the cent, fees included, against the fee rules
the docs state (docs/exchange.md, docs/money.md).
"""

from __future__ import annotations

import base64
import math
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.conftest import Services, create_scratch_database, free_port, spawn, stop_process

TICKER = "KXFED-27JAN-CUT"  # demo market, fair YES 38: makers quote YES 37 bid / 39 ask
PASSWORD = "Journey-Pass-2026!"
KYC = {
    "target_tier": "standard",
    "first_name": "Grace",
    "last_name": "Hopper",
    "dob": "1986-12-09",
    "address": {
        "line1": "1 Compiler Lane",
        "city": "Arlington",
        "state": "VA",
        "postal_code": "22201",
        "country": "US",
    },
    "phone": "+14155550142",
}
_redis_db = iter(range(2, 16))  # each journey gets a Redis database nobody else uses


@dataclass
class Stack:
    url: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


@pytest.fixture
def stack(services: Services) -> Iterator[Stack]:
    """`pull migrate`d scratch database, `pull seed`, then `pull api` and `pull worker`."""
    database_url = create_scratch_database(services, "pull_journey")
    port, metrics = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    redis_url = services.redis_url.rsplit("/", 1)[0] + f"/{next(_redis_db)}"
    env = services.env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        TEMPORAL_TASK_QUEUE=f"journey-{uuid.uuid4().hex[:8]}",
        PORT=str(port),
        HOST="127.0.0.1",
        METRICS_PORT=str(metrics),
        KYC_WEBHOOK_BASE_URL=url,
        KYC_SANDBOX_DELAY_SECONDS="0.5",
        PLAID_WEBHOOK_URL=f"{url}/webhooks/plaid",
        PLAID_SANDBOX_POST_SECONDS="0.5",
        PLAID_SANDBOX_SETTLE_SECONDS="0.5",
    )
    seeded = subprocess.run(
        [sys.executable, "-m", "pull.cli", "seed"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    logs = services.data_dir
    running = Stack(url)
    try:
        running.procs.append(spawn(["worker"], env, logs / f"journey-worker-{port}.log"))
        running.procs.append(spawn(["api"], env, logs / f"journey-api-{port}.log"))
        _wait(f"http://127.0.0.1:{metrics}/metrics", running.procs[0])
        _wait(f"{url}/health/ready", running.procs[1])
        yield running
    finally:
        for proc in reversed(running.procs):
            stop_process(proc)


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"process exited with {proc.returncode} before {url} answered"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


def eventually(fetch: Any, done: Any, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        assert time.monotonic() < deadline, f"gave up waiting; last seen {value}"
        time.sleep(0.75)  # within the authenticated rate limit (100 a minute) on a slow machine
        value = fetch()
    return value


def taker_fee(count: int, price: int, bps: int = 700) -> int:
    """docs/exchange.md: ceil(0.07 x C x P x (1 - P)) dollars, rounded up to the cent."""
    return math.ceil(bps * count * price * (100 - price) / 1_000_000)


def withdrawal_fee(amount: int) -> int:
    """docs/money.md: standard speed, 0.25 % rounded up, at least 25 cents, at most $5."""
    return min(max(math.ceil(amount * 25 / 10_000), 25), 500)


@dataclass
class Customer:
    http: httpx.Client
    email: str
    headers: dict[str, str] = field(default_factory=dict)
    bank: str = ""

    def call(self, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
        r = self.http.request(method, path, headers={**self.headers, **kw.pop("headers", {})}, **kw)
        assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def balance(self) -> dict[str, int]:
        body: dict[str, int] = self.call("GET", "/api/v1/balance")
        return body

    def inbox(self, channel: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.call("GET", "/api/v1/sandbox/messages")["items"]
        return [m for m in items if m["channel"] == channel]


def onboard(http: httpx.Client, phone: str) -> Customer:
    """Register, verify email and phone, KYC to standard, link a bank, deposit $100: the
    journey up to the first trade, every gate passed through the API."""
    me = Customer(http, f"journey-{uuid.uuid4().hex[:10]}@example.com")
    body = me.call(
        "POST", "/api/auth/register", 201, json={"email": me.email, "password": PASSWORD}
    )
    me.headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert not body["user"]["email_verified"] and not body["user"]["phone_verified"]
    r = http.post("/api/v1/kyc/start", headers=me.headers, json={**KYC, "phone": phone})
    assert r.status_code == 403 and r.json()["error"]["code"] == "CONTACT_UNVERIFIED", r.text

    # 1. the verification mail, from the message box
    (mail,) = me.inbox("email")
    assert mail["to"] == me.email
    token = re.search(r"token=([A-Za-z0-9_\-]+)", mail["body"])
    assert token, mail
    assert me.call("POST", "/api/auth/verify-email", json={"token": token.group(1)})[
        "email_verified"
    ]

    # 2. the phone, with the texted code
    started = me.call("POST", "/api/auth/phone/start", 202, json={"phone": phone})
    assert started["phone"] == phone
    (sms,) = me.inbox("sms")
    code = re.search(r"\b(\d{6})\b", sms["body"])
    assert code and sms["to"] == phone, sms
    user = me.call("POST", "/api/auth/phone/verify", json={"code": code.group(1)})
    assert user["email_verified"] and user["phone_verified"]

    # 3. KYC to standard in the sandbox (Persona's webhooks reach the API, the worker decides)
    me.call("POST", "/api/v1/kyc/start", 202, json={**KYC, "phone": phone})
    status = eventually(
        lambda: me.call("GET", "/api/v1/kyc/status"), lambda s: s["current_tier"] == "standard"
    )
    assert status["status"] == "approved", status

    # 4. a bank, from the account list Link's metadata gives
    link = me.call("POST", "/api/v1/funding/sandbox/public-token", json={})
    checking = next(a for a in link["accounts"] if a["subtype"] == "checking")
    assert checking["mask"] == "0000" and link["institution"]["name"]
    bank = me.call(
        "POST",
        "/api/v1/funding/bank-accounts",
        201,
        json={"public_token": link["public_token"], "account_id": checking["account_id"]},
    )
    me.bank = bank["id"]
    assert [b["id"] for b in me.call("GET", "/api/v1/funding/bank-accounts")["items"]] == [me.bank]

    # 5. $100 in, until it has settled
    assert me.balance()["total"] == 0
    deposit = me.call(
        "POST",
        "/api/v1/funding/deposits",
        201,
        json={"amount": 10_000, "bank_account_id": me.bank},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    settled = eventually(
        lambda: me.call("GET", f"/api/v1/funding/deposits/{deposit['id']}"),
        lambda d: d["status"] == "settled",
    )
    assert settled["amount"] == 10_000
    assert me.balance() == {
        "available": 10_000,
        "held": 0,
        "pending_deposits": 0,
        "withdrawable": 10_000,
        "total": 10_000,
        "currency": "USD",
    }
    return me


def withdraw(me: Customer, amount: int, balance_before: int) -> None:
    """Take `amount` out (standard speed) and wait until it has completed."""
    fee = withdrawal_fee(amount)
    w = me.call(
        "POST",
        "/api/v1/funding/withdrawals",
        201,
        json={"amount": amount, "bank_account_id": me.bank, "speed": "standard"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert (w["amount"], w["fee"], w["net_amount"]) == (amount, fee, amount - fee)
    done = eventually(
        lambda: me.call("GET", f"/api/v1/funding/withdrawals/{w['id']}"),
        lambda x: x["status"] in ("completed", "failed", "rejected", "returned"),
    )
    assert done["status"] == "completed", done
    after = me.balance()
    assert after["available"] == balance_before - amount and after["held"] == 0
    assert after["total"] == after["available"]


def slowly(fetch: Any, done: Any, timeout: float = 90) -> Any:
    """`eventually` at one request a second (the rewards steps come late in the journey, when
    much of the caller's per-minute rate limit is spent)."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        assert time.monotonic() < deadline, f"gave up waiting; last seen {value}"
        time.sleep(1)
        value = fetch()
    return value


def rewards_balance(me: Customer) -> dict[str, Any]:
    body: dict[str, Any] = me.call("GET", "/api/v1/rewards/balance")
    return body


def buy_a_fractional_share(me: Customer, cash: int) -> int:
    """docs/brokerage.md: the broker account the worker opened from the KYC data when KYC
    approved (the kyc outbox event), 0.01 of a share bought through the sandbox broker (its
    market pinned open), the fill applied by the worker from the broker's event stream.
    Returns what it cost."""
    r = eventually(
        lambda: me.http.get("/api/v1/trading/account", headers=me.headers),
        lambda r: r.status_code == 200,
    )
    account = r.json()
    assert account["status"] == "ACTIVE", account
    assert me.call("POST", "/api/v1/trading/account", 200) == account  # already open
    me.call("PUT", "/api/v1/trading/sandbox/clock", json={"market": "open"})
    ask = me.call("GET", "/api/v1/trading/quotes/AAPL")["ask"]
    order = me.call(
        "POST",
        "/api/v1/trading/orders",
        201,
        json={"symbol": "AAPL", "side": "buy", "qty": "0.01", "client_order_id": "journey-1"},
    )
    assert order["hold_cents"] > 0 and me.balance()["held"] == order["hold_cents"]
    done = eventually(
        lambda: me.call("GET", f"/api/v1/trading/orders/{order['id']}"),
        lambda o: o["status"] == "filled" and o["hold_cents"] == 0,
    )
    # 0.01 share x the ask in dollars = the ask in cents, rounded half up
    expected = int(Decimal(ask).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert done["filled_cents"] == expected, (done, ask)
    (position,) = me.call("GET", "/api/v1/trading/positions")["items"]
    assert (position["symbol"], position["qty"]) == ("AAPL", "0.01"), position
    assert position["cost_cents"] == done["filled_cents"]
    assert me.balance()["available"] == cash - done["filled_cents"]
    assert me.balance()["held"] == 0
    cost: int = done["filled_cents"]
    return cost


def test_a_new_customer_goes_from_sign_up_to_withdrawal(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        me = onboard(http, "+14155550142")
        # The deposit's points lift the customer to silver; the batched rewards consumer applies
        # a tier from the next relay batch on (docs/rewards.md), so trade once silver shows.
        slowly(lambda: rewards_balance(me), lambda b: b["tier"] == "silver")

        book = me.call("GET", f"/api/v1/markets/{TICKER}/orderbook")
        assert book, book
        # buy 10 YES at 39¢: it fills against the NO maker's 61¢ bid (YES ask 39)
        buy = me.call(
            "POST",
            "/api/v1/orders",
            201,
            json={"ticker": TICKER, "side": "yes", "action": "buy", "count": 10, "yes_price": 39},
        )
        fee_buy = taker_fee(10, 39)
        assert (buy["status"], buy["fill_count"], buy["taker_fees"]) == ("executed", 10, fee_buy)
        cash = 10_000 - 10 * 39 - fee_buy
        assert me.balance()["available"] == cash and me.balance()["held"] == 0
        (pos,) = me.call("GET", "/api/v1/positions", params={"ticker": TICKER})["items"]
        assert pos["position"] == 10, pos

        # sell 4 of them into the YES maker's 37¢ bid
        sell = me.call(
            "POST",
            "/api/v1/orders",
            201,
            json={"ticker": TICKER, "side": "yes", "action": "sell", "count": 4, "yes_price": 37},
        )
        fee_sell = taker_fee(4, 37)
        assert (sell["status"], sell["fill_count"], sell["taker_fees"]) == (
            "executed",
            4,
            fee_sell,
        )
        cash += 4 * 37 - fee_sell
        assert me.balance()["available"] == cash
        (pos,) = me.call("GET", "/api/v1/positions", params={"ticker": TICKER})["items"]
        assert pos["position"] == 6, pos
        fills = me.call("GET", "/api/v1/fills", params={"ticker": TICKER})["items"]
        assert sorted((f["action"], f["count"]) for f in fills) == [("buy", 10), ("sell", 4)]

        cash -= buy_a_fractional_share(me, cash)

        withdraw(me, 5_000, cash)
        cash -= 5_000

        # Points, by the default rules (docs/rewards.md) applied by the worker: KYC 500
        # (promotional, once), the first deposit 1,000 (once) + 1 a dollar (qualifying, so
        # silver from 1,000), then a point a contract traded times silver's 1.1: 11 + 4.
        points = slowly(lambda: rewards_balance(me), lambda b: b["available"] >= 1_615)
        assert points["available"] == 1_615 and points["lifetime_earned"] == 1_615
        assert points["qualifying_points"] == 1_115 and points["tier"] == "silver"
        history = me.call("GET", "/api/v1/rewards/history")["items"]
        assert sorted(i["points"] for i in history) == [4, 11, 100, 500, 1_000]
        # Redeem 500 points for $5 of cash, through the ledger.
        (item,) = [
            i
            for i in me.call("GET", "/api/v1/rewards/catalog")["items"]
            if i["kind"] == "cash_credit"
        ]
        assert item["points_price"] == 500
        redeemed = me.call(
            "POST",
            "/api/v1/rewards/redeem",
            201,
            json={"reward_id": item["id"], "quantity": 1},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert redeemed["status"] == "pending" and redeemed["cash_cents"] == 500
        done = slowly(
            lambda: me.call("GET", f"/api/v1/rewards/redemptions/{redeemed['id']}"),
            lambda r: r["status"] != "pending",
        )
        assert done["status"] == "fulfilled", done
        points = rewards_balance(me)
        assert (points["available"], points["pending"], points["lifetime_redeemed"]) == (
            1_115,
            0,
            500,
        )
        assert me.balance()["available"] == cash + 500


# --- the trading part through the Kalshi Trade API (RSA-PSS signed) ---------------------------

TRADE = "/trade-api/v2"


@dataclass
class Signer:
    key_id: str
    key: rsa.RSAPrivateKey

    def headers(self, method: str, path: str) -> dict[str, str]:
        """Kalshi's scheme: RSA-PSS (SHA-256) over timestamp + METHOD + path without query."""
        ts = str(int(time.time() * 1000))
        signature = self.key.sign(
            (ts + method + path.split("?")[0]).encode(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
            hashes.SHA256(),
        )
        return {
            "KALSHI-ACCESS-KEY": self.key_id,
            "KALSHI-ACCESS-TIMESTAMP": ts,
            "KALSHI-ACCESS-SIGNATURE": base64.b64encode(signature).decode(),
        }


def test_the_same_journey_trading_through_the_trade_api(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        me = onboard(http, "+14155550143")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        created = me.call(
            "POST", "/api/v1/api-keys", 201, json={"name": "journey bot", "public_key_pem": pem}
        )
        signer = Signer(created["key_id"], key)

        def trade(method: str, path: str, expect: int = 200, **kw: Any) -> Any:
            full = TRADE + path
            r = http.request(method, full, headers=signer.headers(method, full), **kw)
            assert r.status_code == expect, f"{method} {full}: {r.status_code} {r.text}"
            return r.json()

        assert trade("GET", "/portfolio/balance")["balance"] == 10_000
        market = trade("GET", f"/markets/{TICKER}")["market"]
        assert market["yes_ask"] == 39 and market["yes_bid"] == 37, market

        buy = trade(
            "POST",
            "/portfolio/orders",
            201,
            json={
                "ticker": TICKER,
                "side": "yes",
                "action": "buy",
                "count": 10,
                "type": "limit",
                "yes_price": 39,
                "client_order_id": str(uuid.uuid4()),
            },
        )["order"]
        fee_buy = taker_fee(10, 39)
        assert buy["status"] == "executed" and buy["fill_count"] == 10, buy
        assert buy["taker_fees"] == fee_buy
        cash = 10_000 - 10 * 39 - fee_buy
        assert trade("GET", "/portfolio/balance")["balance"] == cash

        sell = trade(
            "POST",
            "/portfolio/orders",
            201,
            json={
                "ticker": TICKER,
                "side": "yes",
                "action": "sell",
                "count": 4,
                "type": "limit",
                "yes_price": 37,
                "client_order_id": str(uuid.uuid4()),
            },
        )["order"]
        fee_sell = taker_fee(4, 37)
        assert sell["status"] == "executed" and sell["taker_fees"] == fee_sell, sell
        cash += 4 * 37 - fee_sell
        assert trade("GET", "/portfolio/balance")["balance"] == cash
        positions = trade("GET", "/portfolio/positions", params={"ticker": TICKER})
        (pos,) = positions["market_positions"]
        assert pos["position"] == 6, pos
        fills = trade("GET", "/portfolio/fills", params={"ticker": TICKER})["fills"]
        assert sorted((f["action"], f["count"]) for f in fills) == [("buy", 10), ("sell", 4)]
        # the app API sees the same account
        assert me.balance()["available"] == cash

        withdraw(me, 5_000, cash)


def test_this_file_speaks_only_http() -> None:
    source = Path(__file__).read_text()
    imports = re.findall(r"^(?:from|import) ([\w.]+)", source, re.M)
    assert not [m for m in imports if m == "pull" or m.startswith(("pull.", "redis", "sql"))]
    assert not [m for m in imports if m.startswith(("asyncpg", "psycopg", "sqlalchemy"))]
    from_conftest = re.search(r"^from tests.conftest import (.*)$", source, re.M)
    assert from_conftest
    # process and database plumbing only: the stack a newcomer gets from `make dev`
    assert set(from_conftest.group(1).split(", ")) == {
        "Services",
        "create_scratch_database",
        "free_port",
        "spawn",
        "stop_process",
    }
