"""Notifications through the HTTP API, the real outbox relay and a Temporal worker."""

from __future__ import annotations

import uuid
from typing import Any

from pull.notifications import delivery
from pull.notifications.activities import senders
from tests.notifications.conftest import NotifyEnv

ALL_FILL_CHANNELS = [
    {"type": "fill", "channel": ch, "enabled": True} for ch in ("in_app", "email", "push")
] + [{"type": "fill", "channel": "matrix", "enabled": False}]


async def _notes(nenv: NotifyEnv, user: Any, **params: Any) -> dict[str, Any]:
    r = await nenv.http.get("/api/v1/notifications", headers=user.headers, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_fill_is_one_notification_per_enabled_channel(
    nenv: NotifyEnv, funded: Any, market: Any
) -> None:
    ticker = await market()
    maker, taker = await funded(), await funded()
    r = await nenv.http.put(
        "/api/v1/notifications/preferences",
        json={"preferences": ALL_FILL_CHANNELS},
        headers=taker.headers,
    )
    assert r.status_code == 200, r.text
    r = await nenv.http.post(
        "/api/v1/notifications/devices",
        json={"platform": "fcm", "token": "fcm-token-" + uuid.uuid4().hex},
        headers=taker.headers,
    )
    assert r.status_code == 201, r.text

    await nenv.trade(maker, taker, ticker, 40)
    async with nenv.worker():
        await nenv.drain()
        page = await _notes(nenv, taker)
        fills = [n for n in page["items"] if n["type"] == "fill"]
        assert len(fills) == 1, page
        note = fills[0]
        assert note["data"]["count"] == 5 and note["data"]["side"] == "no"
        # and the KYC decision of the fixture: one notification each
        assert sorted(n["type"] for n in page["items"]) == ["fill", "kyc"]
        assert page["unread_count"] == 2
        statuses = await nenv.wait_delivered(note["id"], taker)
    assert statuses == {"in_app": "sent", "email": "sent", "push": "sent"}

    # exactly one email and one push, and none on the disabled Matrix channel
    mails = await nenv.sql(
        "SELECT subject FROM outbound_emails WHERE to_address = :to AND kind = 'notification.fill'",
        to=taker.email,
    )
    assert len(mails) == 1 and ticker in mails[0][0]
    pushes = await nenv.sql(
        "SELECT platform, payload FROM notification_push_sandbox WHERE collapse_id = :c",
        c=note["id"],
    )
    assert len(pushes) == 1 and pushes[0][0] == "fcm"
    assert pushes[0][1]["message"]["android"]["collapse_key"] == note["id"]

    # the maker was notified too, on its default channels (fill: in-app and push; no device)
    maker_page = await _notes(nenv, maker)
    maker_fills = [n for n in maker_page["items"] if n["type"] == "fill"]
    assert len(maker_fills) == 1 and maker_fills[0]["data"]["side"] == "yes"

    # the event delivered again (at-least-once relay): no second notification
    await nenv.execute(
        "UPDATE outbox_events SET delivered_at = NULL WHERE topic = 'exchange.trade'"
    )
    await nenv.drain()
    assert len([n for n in (await _notes(nenv, taker))["items"] if n["type"] == "fill"]) == 1

    # a channel delivered again (a retried activity): nothing is sent twice
    async with nenv.maker() as s, s.begin():
        for channel in ("email", "push"):
            status = await delivery.deliver(
                session=s,
                notification_id=uuid.UUID(note["id"]),
                channel=channel,
                senders=senders(),
            )
            assert status == "sent"
    mails = await nenv.sql(
        "SELECT count(*) FROM outbound_emails WHERE kind = 'notification.fill' AND to_address = :t",
        t=taker.email,
    )
    pushes = await nenv.sql(
        "SELECT count(*) FROM notification_push_sandbox WHERE collapse_id = :c", c=note["id"]
    )
    assert mails[0][0] == 1 and pushes[0][0] == 1


async def test_inbox_read_and_pagination(nenv: NotifyEnv, funded: Any, market: Any) -> None:
    ticker = await market()
    maker, taker = await funded(), await funded()
    for price in (30, 31, 32):
        await nenv.trade(maker, taker, ticker, price)
    await nenv.drain()
    # three fills and the KYC decision of the fixture
    first = await _notes(nenv, taker, limit=3)
    assert len(first["items"]) == 3 and first["cursor"] and first["unread_count"] == 4
    rest = await _notes(nenv, taker, limit=3, cursor=first["cursor"])
    assert len(rest["items"]) == 1 and rest["cursor"] is None
    ids = {n["id"] for n in first["items"] + rest["items"]}
    assert len(ids) == 4
    assert [n["type"] for n in first["items"] + rest["items"]] == ["fill"] * 3 + ["kyc"]

    one = first["items"][0]["id"]
    r = await nenv.http.post(f"/api/v1/notifications/{one}/read", headers=taker.headers)
    assert r.status_code == 200 and r.json() == {"marked": 1, "unread_count": 3}, r.text
    # another customer's notification is not found, and marks nothing
    r = await nenv.http.post(f"/api/v1/notifications/{one}/read", headers=maker.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOTIFICATION_NOT_FOUND"
    unread = await _notes(nenv, taker, unread_only="true")
    assert len(unread["items"]) == 3
    r = await nenv.http.post(
        "/api/v1/notifications/read",
        json={"ids": [unread["items"][0]["id"]]},
        headers=taker.headers,
    )
    assert r.json() == {"marked": 1, "unread_count": 2}
    r = await nenv.http.post("/api/v1/notifications/read", json={}, headers=taker.headers)
    assert r.json() == {"marked": 2, "unread_count": 0}
    r = await nenv.http.get("/api/v1/notifications?cursor=bogus", headers=taker.headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_CURSOR"
    r = await nenv.http.get("/api/v1/notifications?limit=0", headers=taker.headers)
    assert r.status_code == 400


async def test_preferences(nenv: NotifyEnv, funded: Any) -> None:
    user = await funded()
    r = await nenv.http.get("/api/v1/notifications/preferences", headers=user.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["time_zone"] == "UTC" and body["quiet_hours"] is None
    prefs = {(p["type"], p["channel"]): p["enabled"] for p in body["preferences"]}
    assert prefs[("fill", "in_app")] and prefs[("deposit", "email")]
    assert not prefs[("fill", "matrix")]

    r = await nenv.http.put(
        "/api/v1/notifications/preferences",
        json={
            "time_zone": "America/New_York",
            "quiet_hours": {"start": "22:00", "end": "07:00"},
            "preferences": [{"type": "deposit", "channel": "email", "enabled": False}],
        },
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["time_zone"] == "America/New_York"
    assert body["quiet_hours"] == {"start": "22:00:00", "end": "07:00:00"}
    prefs = {(p["type"], p["channel"]): p["enabled"] for p in body["preferences"]}
    assert not prefs[("deposit", "email")]

    bad = [
        ({"time_zone": "Mars/Olympus"}, 400, "INVALID_TIME_ZONE"),
        ({"preferences": [{"type": "spam", "channel": "email", "enabled": True}]}, 422, None),
        ({"preferences": [{"type": "fill", "channel": "fax", "enabled": True}]}, 422, None),
        ({"quiet_hours": {"start": "07:00", "end": "07:00"}}, 422, None),
        ({"bogus": 1}, 422, None),
    ]
    for payload, code, error in bad:
        r = await nenv.http.put(
            "/api/v1/notifications/preferences", json=payload, headers=user.headers
        )
        assert r.status_code == code, (payload, r.text)
        if error:
            assert r.json()["error"]["code"] == error
    r = await nenv.http.put(
        "/api/v1/notifications/preferences", json={"clear_quiet_hours": True}, headers=user.headers
    )
    assert r.json()["quiet_hours"] is None and r.json()["time_zone"] == "America/New_York"


async def test_price_alerts_fire_once(nenv: NotifyEnv, funded: Any, market: Any) -> None:
    ticker = await market()
    maker, taker, watcher = await funded(), await funded(), await funded()
    r = await nenv.http.post(
        "/api/v1/alerts", json={"ticker": "NOPE", "above": 50}, headers=watcher.headers
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "MARKET_NOT_FOUND"
    for payload in (
        {"ticker": ticker},
        {"ticker": ticker, "above": 50, "below": 40},
        {"ticker": ticker, "above": 100},
    ):
        r = await nenv.http.post("/api/v1/alerts", json=payload, headers=watcher.headers)
        assert r.status_code == 422, r.text
    up = await nenv.http.post(
        "/api/v1/alerts", json={"ticker": ticker, "above": 50}, headers=watcher.headers
    )
    down = await nenv.http.post(
        "/api/v1/alerts", json={"ticker": ticker, "below": 20}, headers=watcher.headers
    )
    assert up.status_code == 201 and down.status_code == 201, (up.text, down.text)

    await nenv.trade(maker, taker, ticker, 45)  # crosses neither
    await nenv.drain()
    assert [n["type"] for n in (await _notes(nenv, watcher))["items"]] == ["kyc"]
    await nenv.trade(maker, taker, ticker, 55)
    await nenv.trade(maker, taker, ticker, 60)
    await nenv.drain()
    items = (await _notes(nenv, watcher))["items"]
    alerts_fired = [n["data"]["price"] for n in items if n["type"] == "price_alert"]
    assert alerts_fired == [55]
    alerts = (await nenv.http.get("/api/v1/alerts", headers=watcher.headers)).json()["items"]
    by_dir = {a["direction"]: a for a in alerts}
    assert by_dir["above"]["status"] == "triggered" and by_dir["above"]["triggered_price"] == 55
    assert by_dir["below"]["status"] == "active"
    r = await nenv.http.delete(f"/api/v1/alerts/{by_dir['below']['id']}", headers=watcher.headers)
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    r = await nenv.http.delete(f"/api/v1/alerts/{by_dir['below']['id']}", headers=taker.headers)
    assert r.status_code == 404


def test_inbox_over_a_real_api_process(api_server: str, services: Any) -> None:
    """The routes served by a real `pull api` process (a user registered through it)."""
    import httpx

    email = f"proc-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=api_server, timeout=30) as c:
        r = c.post(
            "/api/auth/register", json={"email": email, "password": "Correct-Horse-9-Battery"}
        )
        assert r.status_code == 201, r.text
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = c.get("/api/v1/notifications", headers=h)
        assert r.status_code == 200 and r.json() == {"items": [], "cursor": None, "unread_count": 0}
        r = c.put(
            "/api/v1/notifications/preferences",
            json={"time_zone": "Asia/Tokyo", "quiet_hours": {"start": "23:00", "end": "06:30"}},
            headers=h,
        )
        assert r.status_code == 200 and r.json()["time_zone"] == "Asia/Tokyo", r.text
        assert c.get("/api/v1/notifications").status_code == 401
