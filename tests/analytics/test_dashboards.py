"""Real activity through the API — sign-ups, verification, KYC, deposits, a withdrawal, a
trade — then the same counts read back from every admin dashboard (computed in ClickHouse).

Gates that are not under test use the shared fixtures: email/phone verification and the KYC
tier are set through their services (which emit the same outbox events as the real flows).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from pull.analytics.client import Warehouse
from pull.analytics.ingest import Ingestor
from tests.analytics.conftest import analytics_overrides
from tests.conftest import Services
from tests.funding.conftest import FundingEnvFactory


async def _market(http: httpx.AsyncClient, admin: Any, ticker: str) -> None:
    h = admin.headers
    await http.post(
        "/api/admin/series", json={"ticker": "KXAN", "title": "A", "category": "Science"}, headers=h
    )
    await http.post(
        "/api/admin/events",
        json={"ticker": "KXAN-26", "series_ticker": "KXAN", "title": "E"},
        headers=h,
    )
    now = dt.datetime.now(dt.UTC)
    r = await http.post(
        "/api/admin/markets",
        json={
            "ticker": ticker,
            "event_ticker": "KXAN-26",
            "title": "Will it?",
            "open_time": (now - dt.timedelta(minutes=1)).isoformat(),
            "close_time": (now + dt.timedelta(days=1)).isoformat(),
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    r = await http.post(f"/api/admin/markets/{ticker}/open", headers=h)
    assert r.status_code == 200, r.text


async def test_dashboards_read_back_the_activity(
    services: Services,
    funding_env: FundingEnvFactory,
    user_factory: Any,
    kyc_tier: Any,
    wh: Warehouse,
    ingestor: Ingestor,
) -> None:
    env = await funding_env(**analytics_overrides(services))
    http = env.http
    admin = await user_factory(admin=True, verified=False)
    traders = [await user_factory(), await user_factory()]
    browser = await user_factory(verified=False)  # signs up, never verifies
    for u in traders:
        await kyc_tier(u.id, "basic")
    banks = [await env.link_bank(u) for u in traders]
    amounts = [12_345, 20_000]
    async with env.worker():
        deposits = [
            await env.deposit(u, b, a) for u, b, a in zip(traders, banks, amounts, strict=True)
        ]
        for u, d in zip(traders, deposits, strict=True):
            await env.wait_status(u, "deposits", d["id"], "settled")
        r = await env.withdraw(traders[0], banks[0], 1_000)
        assert r.status_code == 201, r.text
        withdrawal = await env.wait_status(traders[0], "withdrawals", r.json()["id"], "completed")

    ticker = "KXAN-26-A"
    await _market(http, admin, ticker)
    maker, taker = traders
    r = await http.post(
        "/api/v1/orders",
        json={"ticker": ticker, "side": "yes", "action": "buy", "count": 10, "yes_price": 55},
        headers=maker.headers,
    )
    assert r.status_code == 201, r.text
    r = await http.post(
        "/api/v1/orders",
        json={
            "ticker": ticker,
            "side": "no",
            "action": "buy",
            "count": 4,
            "type": "market",
            "time_in_force": "immediate_or_cancel",
        },
        headers=taker.headers,
    )
    assert r.status_code == 201 and r.json()["fill_count"] == 4, r.text
    fees = 0
    for u in traders:
        fills = (await http.get("/api/v1/fills", headers=u.headers)).json()["items"]
        fees += sum(f["fee"] for f in fills)
    r = await http.post(
        "/api/v1/analytics/track",
        json={"event": "Market Viewed", "properties": {"ticker": ticker}},
        headers=browser.headers,
    )
    assert r.status_code == 200, r.text

    await ingestor.drain()
    today = dt.datetime.now(dt.UTC).date()
    q = {"start": (today - dt.timedelta(days=6)).isoformat(), "end": today.isoformat()}
    h = admin.headers

    r = await http.get("/api/admin/analytics/overview", params=q, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    expected = {
        "active_users": 4,
        "signups": 4,
        "email_verifications": 2,
        "phone_verifications": 2,
        "kyc_approvals": 2,
        "deposits": 2,
        "deposit_volume_cents": sum(amounts),
        "withdrawals": 1,
        "withdrawal_volume_cents": 1_000,
        "trades": 1,
        "contracts_traded": 4,
        "trading_volume_cents": 4 * 45,  # the taker bought NO at 45
        "trading_fees_cents": fees,
        "withdrawal_fees_cents": withdrawal["fee"],
    }
    assert body["totals"] == expected
    day = body["days"][-1]
    assert day["day"] == today.isoformat() and (day["dau"], day["wau"], day["mau"]) == (4, 4, 4)
    assert {k: day[k] for k in expected if k != "active_users"} == {
        k: v for k, v in expected.items() if k != "active_users"
    }
    assert len(body["days"]) == 7

    r = await http.get("/api/admin/analytics/funnel", params=q, headers=h)
    assert r.status_code == 200, r.text
    steps = [(s["step"], s["users"], s["drop_off"]) for s in r.json()["steps"]]
    assert steps == [
        ("signed_up", 4, 0),
        ("email_verified", 2, 2),
        ("phone_verified", 2, 0),
        ("kyc_approved", 2, 0),
        ("deposit_settled", 2, 0),
        ("trade", 2, 0),
    ]
    assert r.json()["steps"][1]["conversion_from_previous"] == 0.5

    r = await http.get("/api/admin/analytics/retention", params={**q, "weeks": 2}, headers=h)
    assert r.status_code == 200, r.text
    cohorts = r.json()["cohorts"]
    monday = today - dt.timedelta(days=today.weekday())
    assert cohorts == [
        {"cohort": monday.isoformat(), "users": 4, "retained": [4, 0, 0], "rates": [1.0, 0, 0]}
    ]

    r = await http.get("/api/admin/analytics/revenue", params=q, headers=h)
    assert r.status_code == 200, r.text
    rev = r.json()
    assert rev["totals_by_product"] == {"exchange": fees, "funding": withdrawal["fee"]}
    assert rev["total_cents"] == fees + withdrawal["fee"]
    assert rev["days"][-1]["by_product"] == rev["totals_by_product"]

    r = await http.get("/api/admin/analytics/markets", params=q, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["markets"] == [
        {
            "ticker": ticker,
            "contracts": 4,
            "volume_cents": 180,
            "trades": 1,
            "traders": 2,
            "fees_cents": fees,
        }
    ]

    # the whole history again (a replayed batch, a backfill): nothing changes
    snapshot = [
        (await http.get(f"/api/admin/analytics/{name}", params=q, headers=h)).json()
        for name in ("overview", "funnel", "retention", "revenue", "markets")
    ]
    from pull.analytics.service import backfill

    await backfill(maker=env.maker, wh=wh, batch_size=7)
    again = [
        (await http.get(f"/api/admin/analytics/{name}", params=q, headers=h)).json()
        for name in ("overview", "funnel", "retention", "revenue", "markets")
    ]
    assert again == snapshot


async def test_dashboards_are_for_admins_and_check_ranges(
    analytics_client: httpx.AsyncClient, user_factory: Any
) -> None:
    user = await user_factory()
    admin = await user_factory(admin=True)
    c = analytics_client
    for name in ("overview", "funnel", "retention", "revenue", "markets"):
        r = await c.get(f"/api/admin/analytics/{name}", headers=user.headers)
        assert r.status_code == 403, r.text
        r = await c.get(f"/api/admin/analytics/{name}")
        assert r.status_code == 401
        r = await c.get(f"/api/admin/analytics/{name}", headers=admin.headers)
        assert r.status_code == 200, r.text
    bad = [
        {"start": "2026-02-01", "end": "2026-01-01"},
        {"start": "2020-01-01", "end": "2026-01-01"},
        {"start": "1900-01-01", "end": "1900-01-02"},
        {"start": "not-a-date"},
    ]
    for params in bad:
        r = await c.get("/api/admin/analytics/overview", params=params, headers=admin.headers)
        assert r.status_code == 422, (params, r.text)
    r = await c.get("/api/admin/analytics/retention", params={"weeks": 40}, headers=admin.headers)
    assert r.status_code == 422
