"""The notifications' Matrix channel: a fill lands, once, in the customer's alerts room."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from pull.app import create_app
from pull.messaging.alerts import AlertsRoomSender
from pull.notifications import delivery
from pull.notifications.activities import set_senders
from pull.notifications.senders import make_senders
from pull.worker import outbox_relay
from tests.conftest import AppRunner, MatrixServer, Services, asgi_client
from tests.exchange.conftest import create_market, fund
from tests.messaging.conftest import matrix_settings
from tests.notifications.conftest import NotifyEnv


async def test_a_fill_reaches_the_alerts_room_once(
    services: Services,
    matrix: MatrixServer,
    sessionmaker: async_sessionmaker[AsyncSession],
    worker_runtime: Any,
    temporal_client: Client,
    task_queue: str,
    user_factory: Any,
    kyc_tier: Any,
) -> None:
    settings = matrix_settings(
        services, matrix, TEMPORAL_TASK_QUEUE=task_queue, RATE_LIMIT_ENABLED=False
    )
    senders = make_senders(settings, AlertsRoomSender(settings))
    set_senders(senders)
    stack = contextlib.AsyncExitStack()
    try:
        app = await stack.enter_async_context(AppRunner(create_app(settings)))
        http = await stack.enter_async_context(asgi_client(app))
        relay = outbox_relay(sessionmaker, temporal_client, settings)
        env = NotifyEnv(http, sessionmaker, relay, temporal_client, settings, task_queue)
        maker_user, taker = await user_factory(), await user_factory()
        for u in (maker_user, taker):
            await kyc_tier(u.id, "standard")
            await fund(sessionmaker, u.id, 100_000)
        r = await http.put(
            "/api/v1/notifications/preferences",
            json={
                "preferences": [
                    {"type": "fill", "channel": "matrix", "enabled": True},
                    {"type": "fill", "channel": "email", "enabled": False},
                    {"type": "fill", "channel": "push", "enabled": False},
                ]
            },
            headers=taker.headers,
        )
        assert r.status_code == 200, r.text
        ticker = await create_market(sessionmaker)
        await env.trade(maker_user, taker, ticker, 62)
        async with env.worker():
            await env.drain()
            page = (await http.get("/api/v1/notifications", headers=taker.headers)).json()
            note = next(n for n in page["items"] if n["type"] == "fill")
            statuses = await env.wait_delivered(note["id"], taker)
        assert statuses == {"in_app": "sent", "matrix": "sent"}

        # the channel again (a retried activity): the row says sent, nothing is sent; and a send
        # that reached Synapse before a crash, repeated with its transaction id, is one event
        async with sessionmaker() as s, s.begin():
            status = await delivery.deliver(
                session=s, notification_id=uuid.UUID(note["id"]), channel="matrix", senders=senders
            )
            assert status == "sent"
            assert senders.matrix is not None
            again = await senders.matrix.send_alert(
                session=s,
                user_id=taker.id,
                txn_id=f"pull-notification-{note['id']}",
                title=note["title"],
                body=note["body"],
            )
        rows = (
            await http.get(f"/api/v1/notifications/{note['id']}/deliveries", headers=taker.headers)
        ).json()
        assert next(d["detail"] for d in rows if d["channel"] == "matrix") == again
        rooms = (await http.get("/api/v1/messages/rooms", headers=taker.headers)).json()["items"]
        alerts = next(x for x in rooms if x["kind"] == "alerts")
        feed = (
            await http.get(f"/api/v1/messages/rooms/{alerts['id']}/messages", headers=taker.headers)
        ).json()
        bodies = [m["body"] for m in feed["items"]]
        assert len(bodies) == 1 and ticker in bodies[0], bodies
        assert feed["items"][0]["msgtype"] == "m.notice" and feed["items"][0]["user_id"] is None
    finally:
        set_senders(None)
        await stack.aclose()
