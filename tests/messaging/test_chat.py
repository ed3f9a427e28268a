"""Two customers chat through PULL's API against a real Synapse: DMs, a market room,
back-fill of a limited sync, moderation, a token for Element, and the send limit."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import nio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import MatrixServer
from tests.exchange.conftest import create_market


async def _rooms(c: httpx.AsyncClient, user: Any) -> list[dict[str, Any]]:
    r = await c.get("/api/v1/messages/rooms", headers=user.headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def _send(c: httpx.AsyncClient, user: Any, room: str, body: str, **kw: Any) -> str:
    r = await c.post(
        f"/api/v1/messages/rooms/{room}/messages", json={"body": body, **kw}, headers=user.headers
    )
    assert r.status_code == 201, r.text
    event_id: str = r.json()["event_id"]
    return event_id


async def _read(c: httpx.AsyncClient, user: Any, room: str, **params: Any) -> dict[str, Any]:
    r = await c.get(f"/api/v1/messages/rooms/{room}/messages", headers=user.headers, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_two_customers_dm_and_chat_in_a_market_room(
    mclient: httpx.AsyncClient,
    user_factory: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    alice, bob = await user_factory(), await user_factory()

    # first use provisions the account and the private, read-only alerts room
    rooms = await _rooms(mclient, alice)
    assert [r["kind"] for r in rooms] == ["alerts"] and rooms[0]["name"] == "PULL alerts"
    r = await mclient.post(
        f"/api/v1/messages/rooms/{rooms[0]['id']}/messages",
        json={"body": "hi"},
        headers=alice.headers,
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "READ_ONLY_ROOM"

    # a DM: one room per pair, whoever opens it
    r = await mclient.post(
        "/api/v1/messages/dm", json={"user_id": str(bob.id)}, headers=alice.headers
    )
    assert r.status_code == 200, r.text
    dm = r.json()
    assert dm["kind"] == "dm"
    again = await mclient.post(
        "/api/v1/messages/dm", json={"user_id": str(alice.id)}, headers=bob.headers
    )
    assert again.json()["id"] == dm["id"]
    await _send(mclient, alice, dm["id"], "hello bob")
    await _send(mclient, bob, dm["id"], "hi alice")
    seen = await _read(mclient, alice, dm["id"])
    assert [(m["body"], m["user_id"]) for m in seen["items"]] == [
        ("hi alice", str(bob.id)),
        ("hello bob", str(alice.id)),
    ]

    # a market room: public, one per market
    ticker = await create_market(sessionmaker)
    ra = await mclient.post(f"/api/v1/messages/rooms/market/{ticker}", headers=alice.headers)
    rb = await mclient.post(f"/api/v1/messages/rooms/market/{ticker}", headers=bob.headers)
    assert ra.status_code == rb.status_code == 200, (ra.text, rb.text)
    assert ra.json()["id"] == rb.json()["id"] and ra.json()["kind"] == "market"
    market_room = ra.json()["id"]
    await _send(mclient, alice, market_room, "YES looks cheap")
    await _send(mclient, bob, market_room, "I'm buying NO")
    feed = await _read(mclient, bob, market_room)
    assert [m["body"] for m in feed["items"]] == ["I'm buying NO", "YES looks cheap"]
    assert {r["kind"] for r in await _rooms(mclient, bob)} == {"alerts", "dm", "market"}

    # outsiders: not in the room, unknown market, yourself
    carol = await user_factory()
    r = await mclient.get(f"/api/v1/messages/rooms/{dm['id']}/messages", headers=carol.headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "NOT_A_MEMBER"
    r = await mclient.post("/api/v1/messages/rooms/market/NOPE-1", headers=carol.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "MARKET_NOT_FOUND"
    r = await mclient.post(
        "/api/v1/messages/dm", json={"user_id": str(carol.id)}, headers=carol.headers
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "CANNOT_MESSAGE_SELF"
    r = await mclient.post(
        f"/api/v1/messages/rooms/{uuid.uuid4()}/messages", json={"body": "x"}, headers=carol.headers
    )
    assert r.status_code == 404
    r = await mclient.post(
        f"/api/v1/messages/rooms/{market_room}/messages", json={"body": ""}, headers=alice.headers
    )
    assert r.status_code == 422


async def test_idempotent_send_and_backfill_of_a_limited_sync(
    mclient_unlimited: httpx.AsyncClient, user_factory: Any
) -> None:
    mclient = mclient_unlimited
    alice, bob = await user_factory(), await user_factory()
    dm = (
        await mclient.post(
            "/api/v1/messages/dm", json={"user_id": str(bob.id)}, headers=alice.headers
        )
    ).json()
    first = await _send(mclient, alice, dm["id"], "once", txn_id="same-key")
    second = await _send(mclient, alice, dm["id"], "once", txn_id="same-key")
    assert first == second
    for i in range(130):
        await _send(mclient, alice if i % 2 else bob, dm["id"], f"m{i}")
    # Synapse caps an initial sync's timeline at 100 events (`limited`); PULL back-fills the
    # rest through /messages from prev_batch
    page = await _read(mclient, bob, dm["id"], limit=120)
    assert page["backfilled"] is True
    bodies = [m["body"] for m in page["items"]]
    assert bodies == [f"m{i}" for i in range(129, 9, -1)]
    older = await _read(mclient, bob, dm["id"], limit=50, **{"from": page["next"]})
    rest = [m["body"] for m in older["items"]]
    assert rest[:10] == [f"m{i}" for i in range(9, -1, -1)] and rest[10] == "once"
    assert len([b for b in rest if b == "once"]) == 1
    short = await _read(mclient, bob, dm["id"], limit=5)
    assert short["backfilled"] is False and len(short["items"]) == 5


async def test_moderation_report_redact_mute(
    mclient: httpx.AsyncClient, user_factory: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice, bob = await user_factory(), await user_factory()
    admin = await user_factory(admin=True)
    ticker = await create_market(sessionmaker)
    room = (
        await mclient.post(f"/api/v1/messages/rooms/market/{ticker}", headers=alice.headers)
    ).json()["id"]
    await mclient.post(f"/api/v1/messages/rooms/market/{ticker}", headers=bob.headers)
    bad = await _send(mclient, bob, room, "buy my course")
    r = await mclient.post(
        f"/api/v1/messages/rooms/{room}/messages/{bad}/report",
        json={"reason": "spam"},
        headers=alice.headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["sender"].startswith("@u" + bob.id.hex)
    r = await mclient.post(
        f"/api/v1/messages/rooms/{room}/messages/{bad}/report",
        json={"reason": "spam"},
        headers=alice.headers,
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "ALREADY_REPORTED"
    r = await mclient.post(
        f"/api/v1/messages/rooms/{room}/messages/$nosuchevent/report",
        json={"reason": "x"},
        headers=alice.headers,
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "EVENT_NOT_FOUND"

    assert (
        await mclient.get("/api/admin/messages/reports", headers=alice.headers)
    ).status_code == 403
    reports = (
        await mclient.get("/api/admin/messages/reports?status=open", headers=admin.headers)
    ).json()
    assert [x["event_id"] for x in reports["items"]] == [bad]
    r = await mclient.post(
        f"/api/admin/messages/rooms/{room}/redact",
        json={"event_id": bad, "reason": "spam"},
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    feed = await _read(mclient, alice, room)
    assert (
        feed["items"][0]["event_id"] == bad
        and feed["items"][0]["redacted"]
        and feed["items"][0]["body"] is None
    )
    reports = (await mclient.get("/api/admin/messages/reports", headers=admin.headers)).json()
    assert reports["items"][0]["status"] == "redacted"

    r = await mclient.post(
        f"/api/admin/messages/rooms/{room}/mute",
        json={"user_id": str(bob.id), "minutes": 60, "reason": "spam"},
        headers=admin.headers,
    )
    assert r.status_code == 204, r.text
    r = await mclient.post(
        f"/api/v1/messages/rooms/{room}/messages", json={"body": "again"}, headers=bob.headers
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "MUTED"
    # the mute holds on the homeserver too: bob's own Matrix client cannot post either
    tok = (await mclient.post("/api/v1/messages/token", headers=bob.headers)).json()
    matrix_room = await _rooms(mclient, bob)
    mroom = next(x["matrix_room_id"] for x in matrix_room if x["id"] == room)
    client = nio.AsyncClient(tok["homeserver"], tok["user_id"])
    client.access_token, client.user_id = tok["access_token"], tok["user_id"]
    try:
        resp = await client.room_send(
            mroom, "m.room.message", {"msgtype": "m.text", "body": "sneaky"}
        )
        assert isinstance(resp, nio.RoomSendError) and resp.status_code == "M_FORBIDDEN", resp
    finally:
        await client.close()
    r = await mclient.delete(
        f"/api/admin/messages/rooms/{room}/mute/{bob.id}", headers=admin.headers
    )
    assert r.status_code == 204


async def test_element_token_and_send_limit(
    mclient: httpx.AsyncClient, user_factory: Any, matrix: MatrixServer
) -> None:
    alice, bob = await user_factory(), await user_factory()
    dm = (
        await mclient.post(
            "/api/v1/messages/dm", json={"user_id": str(bob.id)}, headers=alice.headers
        )
    ).json()
    r = await mclient.post("/api/v1/messages/token", headers=alice.headers)
    assert r.status_code == 200, r.text
    tok = r.json()
    assert tok["homeserver"] == matrix.url and tok["user_id"].startswith("@u" + alice.id.hex)
    # any Matrix client works with it: sync, see the DM, post into it
    client = nio.AsyncClient(tok["homeserver"], tok["user_id"])
    client.access_token, client.user_id = tok["access_token"], tok["user_id"]
    try:
        sync = await client.sync(timeout=0)
        assert dm["matrix_room_id"] in sync.rooms.join
        sent = await client.room_send(
            dm["matrix_room_id"], "m.room.message", {"msgtype": "m.text", "body": "from Element"}
        )
        assert isinstance(sent, nio.RoomSendResponse), sent
    finally:
        await client.close()
    feed = await _read(mclient, bob, dm["id"])
    assert feed["items"][0]["body"] == "from Element"

    # the per-user send limit: 30 per 30 s (a sliding window), then 429 with Retry-After
    codes, refused = [], []
    for i in range(36):
        r = await mclient.post(
            f"/api/v1/messages/rooms/{dm['id']}/messages",
            json={"body": f"spam {i}"},
            headers=bob.headers,
        )
        codes.append(r.status_code)
        if r.status_code == 429:
            refused.append(r)
    assert codes[:30] == [201] * 30 and refused, codes
    assert refused[0].json()["error"]["details"]["class"] == "messaging"
    assert int(refused[0].headers["Retry-After"]) >= 1
    # alice is not limited by bob's sends
    await _send(mclient, alice, dm["id"], "still fine")
    await asyncio.sleep(0)
