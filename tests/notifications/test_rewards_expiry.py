"""The rewards expiry warning is one e-mail, not two: the rewards module e-mails it itself and
says so on `rewards.points_expiring` (`emailed: true`), so the notification it becomes keeps
its in-app (and push, Matrix) channels but not e-mail, even for a customer who turned on
e-mail for rewards. Through the real path: the maintenance workflow on a worker, the outbox
relay with every consumer, the delivery workflow, the sandbox mailbox over HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from sqlalchemy import text

from tests.conftest import UserFactory
from tests.identity.test_phone import box
from tests.rewards.conftest import RewardsEnv, rw

__all__ = ["rw"]  # the fixture, used here


async def _expiring_notes(rw: RewardsEnv, user: Any) -> list[dict[str, Any]]:
    r = await rw.http.get("/api/v1/notifications", headers=user.headers)
    assert r.status_code == 200, r.text
    return [n for n in r.json()["items"] if "expire" in n["title"]]


async def test_the_expiry_warning_is_emailed_once(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    user = await user_factory()
    r = await rw.http.put(
        "/api/v1/notifications/preferences",
        json={
            "preferences": [
                {"type": "rewards", "channel": ch, "enabled": True}
                for ch in ("in_app", "email", "push")
            ]
        },
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    r = await rw.http.post(
        "/api/v1/notifications/devices",
        json={"platform": "fcm", "token": "fcm-token-" + uuid.uuid4().hex},
        headers=user.headers,
    )
    assert r.status_code == 201, r.text
    await rw.grant(user, 25)
    async with rw.maker() as s, s.begin():  # the lot's age is the gate, not what is tested
        await s.execute(
            text(
                "UPDATE rewards_lots SET expires_at = now() + interval '5 days' WHERE user_id = :u"
            ),
            {"u": user.id},
        )

    async with rw.worker():
        totals = await rw.temporal.execute_workflow(
            "RewardsMaintenanceWorkflow",
            None,
            id=f"maint-{uuid.uuid4().hex}",
            task_queue=rw.task_queue,
        )
        assert totals["warned"] >= 1
        deadline = time.monotonic() + 60
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            await rw.drain()
            notes = await _expiring_notes(rw, user)
            if notes:
                r = await rw.http.get(
                    f"/api/v1/notifications/{notes[0]['id']}/deliveries", headers=user.headers
                )
                statuses = {d["channel"]: d["status"] for d in r.json()}
                if "pending" not in statuses.values():
                    break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"the warning's deliveries never finished: {statuses}")
        await rw.drain()  # a redelivered event makes no second notification, nor mail

    notes = await _expiring_notes(rw, user)
    assert [(n["type"], n["title"]) for n in notes] == [("rewards", "25 points expire soon")]
    items = (await box(rw.http, user))["items"]
    assert isinstance(items, list)
    mails = [m for m in items if m["channel"] == "email" and "expire" in (m["subject"] or "")]
    assert len(mails) == 1, mails
    assert mails[0]["subject"] == "25 PULL points expire soon"  # the rewards module's own
    assert statuses == {"in_app": "sent", "email": "skipped", "push": "sent"}, statuses
