"""The in-app push of new notifications on the live stream: the relay's batch handler for
`notifications.created` (one Redis pipeline per relay batch), exactly once per notification
whatever the relay delivers twice."""

from __future__ import annotations

import uuid
from typing import Any

from redis.asyncio import Redis

from pull.kit.streams import USER_STREAM, decode
from pull.notifications.service import CREATED_TOPIC, Notice, notify
from tests.notifications.conftest import NotifyEnv


async def _pushes(redis: Redis, ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The user-stream entries of these notifications, by notification id (with `u`)."""
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(USER_STREAM)  # type: ignore[assignment]
    for _, fields in entries:
        event = decode(fields[b"e"])
        nid = str(event["eid"]).removeprefix("notification-")
        if event["type"] == "notification" and nid in out:
            out[nid].append({**event, "u": fields[b"u"].decode()})
    return out


async def test_a_batch_with_duplicates_and_redeliveries_pushes_each_notification_once(
    nenv: NotifyEnv, user_factory: Any, redis: Redis
) -> None:
    alice, bob = await user_factory(), await user_factory()
    notices = [
        Notice(
            user_id=u.id,
            type="kyc",
            title=f"note {i}",
            body="body",
            dedupe_key=f"live-push:{uuid.uuid4()}",
        )
        for i, u in enumerate([alice, alice, alice, bob, bob])
    ]
    async with nenv.maker() as s, s.begin():
        ids = {str(i) for i in await notify(session=s, notices=notices)}
    assert len(ids) == 5
    # a duplicate of one event in the same relay batch (an at-least-once producer), and an
    # event the batch handler cannot read: that one fails alone
    await nenv.execute(
        "INSERT INTO outbox_events (topic, key, payload) SELECT topic, key, payload "
        "FROM outbox_events WHERE topic = :t ORDER BY id LIMIT 1",
        t=CREATED_TOPIC,
    )
    await nenv.execute(
        "INSERT INTO outbox_events (topic, key, payload) VALUES (:t, 'x', '{\"user_id\": 1}')",
        t=CREATED_TOPIC,
    )
    await nenv.drain()

    pushed = await _pushes(redis, ids)
    assert {nid: len(events) for nid, events in pushed.items()} == dict.fromkeys(ids, 1)
    by_user = {str(alice.id): 0, str(bob.id): 0}
    for (event,) in pushed.values():
        by_user[event["u"]] += 1
        assert event["data"]["notification_id"] == event["eid"].removeprefix("notification-")
        assert event["data"]["title"].startswith("note ")
    assert by_user == {str(alice.id): 3, str(bob.id): 2}
    rows = await nenv.sql(
        "SELECT delivered_at IS NOT NULL, attempts, last_error FROM outbox_events "
        "WHERE topic = :t ORDER BY id",
        t=CREATED_TOPIC,
    )
    assert [r[0] for r in rows] == [True] * 6 + [False]
    assert rows[-1][1] >= 1 and "KeyError" in rows[-1][2]

    # the whole batch relayed again (a relay that crashed before marking it): no second push
    await nenv.execute(
        "UPDATE outbox_events SET delivered_at = NULL WHERE topic = :t AND attempts = 0",
        t=CREATED_TOPIC,
    )
    assert await nenv.drain() >= 6
    again = await _pushes(redis, ids)
    assert {nid: len(events) for nid, events in again.items()} == dict.fromkeys(ids, 1)
