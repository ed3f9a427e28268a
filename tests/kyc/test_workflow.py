"""KycWorkflow on the real Temporal dev server, driven through the API, the outbox and the
sandbox providers' signed webhooks: approve, decline, manual review approve and reject,
timeout expiry, duplicated webhooks, worker restart mid-flow, cancel and retry, expiry."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.identity.models import AuditLog, OutboundEmail
from pull.kit.db import utcnow
from pull.kit.outbox import OutboxEvent
from pull.kyc import service
from pull.kyc.models import KycApplication, KycWebhookEvent
from pull.kyc.providers.sandbox import persona_event
from pull.kyc.schemas import Tier
from tests.conftest import UserFactory
from tests.kyc.conftest import KycEnvFactory, dumps, persona_headers


async def _tier(maker: async_sessionmaker[AsyncSession], user_id: uuid.UUID) -> Tier:
    async with maker() as s:
        return await service.get_tier(session=s, user_id=user_id)


async def test_standard_verification_is_approved(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = await kyc_env()
    user = await user_factory()
    r = await env.start(user)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    assert r.json()["target_tier"] == "standard"
    async with env.worker():
        body = await env.wait_status(user, "approved", "declined", "manual_review", "expired")
    assert body["status"] == "approved", body
    assert body["current_tier"] == "standard"
    assert body["progress"] == 100
    assert [s["status"] for s in body["steps"]] == ["passed", "passed", "passed"]
    assert body["next_action"] == "start"
    assert body["session_token"] is None  # only shown while the inquiry waits for the user
    assert await _tier(sessionmaker, user.id) is Tier.standard
    async with sessionmaker() as s:
        actions = set(
            (await s.scalars(select(AuditLog.action).where(AuditLog.action.like("kyc.%")))).all()
        )
        events = (
            await s.scalars(select(OutboxEvent).where(OutboxEvent.topic == "kyc.approved"))
        ).all()
    assert {"kyc.started", "kyc.tier", "kyc.approved"} <= actions
    assert [e.payload["tier"] for e in events] == ["standard"]
    assert events[0].payload["user_id"] == str(user.id)
    limits = (await env.http.get("/api/v1/kyc/limits", headers=user.headers)).json()
    assert limits["tier"] == "standard"
    assert limits["single_trade_max_cents"] == 500_000
    # Starting again for the same tier is refused; a higher one is allowed.
    again = await env.start(user)
    assert again.status_code == 409 and again.json()["error"]["code"] == "ALREADY_VERIFIED"


async def test_session_token_is_shown_while_the_inquiry_waits(
    kyc_env: KycEnvFactory, user_factory: UserFactory
) -> None:
    env = await kyc_env()
    user = await user_factory()
    assert (await env.start(user, last_name="Abandon")).status_code == 202
    async with env.worker():
        body = await env.wait_for(user, lambda b: b["session_token"] is not None)
    assert body["next_action"] == "complete_identity_verification"
    assert body["inquiry_id"].startswith("inq_")
    assert body["session_token"].startswith("sandbox-session-")


async def test_declined_then_retry(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = await kyc_env()
    user = await user_factory()
    assert (await env.start(user, last_name="Decline")).status_code == 202
    async with env.worker():
        body = await env.wait_status(user, "declined", "approved", "manual_review")
        assert body["status"] == "declined"
        assert body["next_action"] == "retry"
        assert body["application"]["reason"] == "identity check failed"
        assert await _tier(sessionmaker, user.id) is Tier.none
        first = body["application"]["id"]
        r = await env.http.post("/api/v1/kyc/retry", headers=user.headers)
        assert r.status_code == 202, r.text
        body = await env.wait_for(
            user, lambda b: b["application"]["id"] != first and b["status"] == "declined"
        )
    async with sessionmaker() as s:
        count = await s.scalar(select(func.count()).select_from(KycApplication))
    assert count == 2


async def test_manual_review_then_admin_approves(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = await kyc_env()
    user = await user_factory()
    admin = await user_factory(admin=True)
    assert (await env.start(user, last_name="Review")).status_code == 202
    async with env.worker():
        body = await env.wait_status(user, "manual_review", "approved", "declined")
        assert body["status"] == "manual_review"
        assert body["next_action"] == "wait_for_review"
        reviews = await env.http.get("/api/admin/kyc/reviews", headers=admin.headers)
        assert reviews.status_code == 200
        items = reviews.json()["items"]
        assert [i["user_id"] for i in items] == [str(user.id)]
        assert items[0]["pii"]["last_name"] == "R*****"
        # Only admins review; nobody approves themselves.
        own = await env.http.post(
            f"/api/admin/kyc/{user.id}/approve",
            json={"tier": "standard", "note": "me"},
            headers=user.headers,
        )
        assert own.status_code == 403
        r = await env.http.post(
            f"/api/admin/kyc/{user.id}/approve",
            json={"tier": "standard", "note": "documents checked by hand"},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "approved"
        handle = env.temporal.get_workflow_handle(f"kyc-{user.id}")
        for _ in range(100):
            if (await handle.query("state"))["phase"] == "idle":
                break
            await asyncio.sleep(0.1)
        assert (await handle.query("state"))["phase"] == "idle"
    assert await _tier(sessionmaker, user.id) is Tier.standard
    async with sessionmaker() as s:
        audit = (await s.scalars(select(AuditLog).where(AuditLog.action == "kyc.approved"))).one()
    assert audit.actor_id == admin.id
    twice = await env.http.post(
        f"/api/admin/kyc/{user.id}/approve",
        json={"tier": "standard", "note": "again"},
        headers=admin.headers,
    )
    assert twice.status_code == 409


async def test_manual_review_then_admin_rejects(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = await kyc_env()
    user = await user_factory()
    admin = await user_factory(admin=True)
    assert (await env.start(user, last_name="Review")).status_code == 202
    async with env.worker():
        await env.wait_status(user, "manual_review")
        r = await env.http.post(
            f"/api/admin/kyc/{user.id}/reject",
            json={"reason": "document does not match"},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
        body = await env.status(user)
    assert body["status"] == "declined"
    assert body["application"]["reason"] == "document does not match"
    assert await _tier(sessionmaker, user.id) is Tier.none


async def test_unfinished_inquiry_gets_reminders_then_expires(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = await kyc_env(
        KYC_REMINDER_1_SECONDS=1, KYC_REMINDER_2_SECONDS=2, KYC_STEP_TIMEOUT_SECONDS=3
    )
    user = await user_factory()
    assert (await env.start(user, last_name="Abandon")).status_code == 202
    async with env.worker():
        body = await env.wait_status(user, "expired", "approved", "declined")
    assert body["status"] == "expired"
    assert body["next_action"] == "retry"
    assert [s["status"] for s in body["steps"]][:2] == ["passed", "failed"]
    async with sessionmaker() as s:
        reminders = (
            await s.scalars(select(OutboundEmail).where(OutboundEmail.kind == "kyc_reminder"))
        ).all()
    assert len(reminders) == 2
    assert all(m.to_address == user.email for m in reminders)


async def test_duplicated_webhooks_count_once(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = await kyc_env()
    user = await user_factory()
    assert (await env.start(user, last_name="Abandon")).status_code == 202  # sandbox stays quiet
    async with env.worker():
        body = await env.wait_for(user, lambda b: b["inquiry_id"] is not None)
        inquiry, app_id = body["inquiry_id"], body["application"]["id"]
        approved = dumps(
            persona_event(
                "inquiry.approved", inquiry_id=inquiry, reference_id=app_id, event_id="evt_1"
            )
        )
        answers = []
        for _ in range(3):
            r = await env.http.post(
                "/webhooks/persona",
                content=approved,
                headers=persona_headers(env.settings, approved),
            )
            assert r.status_code == 200, r.text
            answers.append(r.json()["duplicate"])
        assert answers == [False, True, True]
        # A later, contradicting event does not undo the first final outcome.
        declined = dumps(
            persona_event(
                "inquiry.declined", inquiry_id=inquiry, reference_id=app_id, event_id="evt_2"
            )
        )
        r = await env.http.post(
            "/webhooks/persona", content=declined, headers=persona_headers(env.settings, declined)
        )
        assert r.status_code == 200
        body = await env.wait_status(user, "approved", "declined")
    assert body["status"] == "approved"
    async with sessionmaker() as s:
        stored = await s.scalar(select(func.count()).select_from(KycWebhookEvent))
        signals = await s.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.topic == "temporal.signal")
            .where(OutboxEvent.payload["signal"].astext == "provider_event")
        )
    assert stored == 2
    assert signals == 2


async def test_worker_restart_mid_flow(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = await kyc_env()
    user = await user_factory()
    assert (await env.start(user, last_name="Abandon")).status_code == 202
    async with env.worker():
        body = await env.wait_for(user, lambda b: b["inquiry_id"] is not None)
    # The worker is gone; the user finishes and Persona's webhook arrives meanwhile.
    payload = dumps(
        persona_event(
            "inquiry.approved",
            inquiry_id=body["inquiry_id"],
            reference_id=body["application"]["id"],
        )
    )
    r = await env.http.post(
        "/webhooks/persona", content=payload, headers=persona_headers(env.settings, payload)
    )
    assert r.status_code == 200
    await asyncio.sleep(1)
    assert (await env.status(user))["status"] == "in_progress"
    async with env.worker():  # a new worker picks the workflow up where it stopped
        body = await env.wait_status(user, "approved", "declined")
    assert body["status"] == "approved"
    assert await _tier(sessionmaker, user.id) is Tier.standard


async def test_cancel_stops_the_attempt(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = await kyc_env()
    user = await user_factory()
    assert (await env.start(user, last_name="Abandon")).status_code == 202
    async with env.worker():
        await env.wait_for(user, lambda b: b["inquiry_id"] is not None)
        r = await env.http.post("/api/v1/kyc/cancel", headers=user.headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "cancelled"
        handle = env.temporal.get_workflow_handle(f"kyc-{user.id}")
        for _ in range(100):
            if (await handle.query("state"))["phase"] == "idle":
                break
            await asyncio.sleep(0.1)
        assert (await handle.query("state"))["phase"] == "idle"
    assert (await env.status(user))["status"] == "cancelled"
    again = await env.http.post("/api/v1/kyc/cancel", headers=user.headers)
    assert again.status_code == 409


async def test_accredited_runs_every_provider(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = await kyc_env()
    user = await user_factory()
    missing_ssn = await env.start(user, target_tier="accredited")
    assert missing_ssn.status_code == 422
    assert missing_ssn.json()["error"]["code"] == "SSN_REQUIRED"
    assert (await env.start(user, target_tier="accredited", ssn_last4="4321")).status_code == 202
    async with env.worker():
        body = await env.wait_status(user, "approved", "declined", "manual_review", "expired")
    assert body["status"] == "approved", body
    assert [s["name"] for s in body["steps"]] == [
        "contact",
        "identity",
        "sanctions",
        "background",
        "accreditation",
    ]
    assert await _tier(sessionmaker, user.id) is Tier.accredited
    async with sessionmaker() as s:
        providers = set((await s.scalars(select(KycWebhookEvent.provider))).all())
    assert providers == {"persona", "checkr", "parallel_markets"}


async def test_background_check_consider_goes_to_review(
    kyc_env: KycEnvFactory, user_factory: UserFactory
) -> None:
    env = await kyc_env()
    user = await user_factory()
    r = await env.start(user, target_tier="enhanced", last_name="Consider", ssn_last4="1234")
    assert r.status_code == 202
    async with env.worker():
        body = await env.wait_status(user, "manual_review", "approved", "declined")
    assert body["status"] == "manual_review"
    assert body["application"]["reason"] == "needs review: background"


async def test_sanctions_hit_declines_and_name_match_goes_to_review(
    kyc_env: KycEnvFactory, user_factory: UserFactory
) -> None:
    env = await kyc_env()
    hit, near = await user_factory(), await user_factory()
    r = await env.start(
        hit, target_tier="basic", first_name="Testy", last_name="Sanctioned", dob="1970-01-01"
    )
    assert r.status_code == 202
    r = await env.start(
        near, target_tier="basic", first_name="Testy", last_name="Sanctioned", dob="1971-02-03"
    )
    assert r.status_code == 202
    async with env.worker():
        body = await env.wait_status(hit, "declined", "approved", "manual_review")
        near_body = await env.wait_status(near, "declined", "approved", "manual_review")
    assert body["status"] == "declined"
    assert body["application"]["reason"] == "sanctions check failed"
    assert near_body["status"] == "manual_review"


async def test_basic_tier_needs_verified_contact(
    kyc_env: KycEnvFactory, user_factory: UserFactory
) -> None:
    env = await kyc_env()
    unverified = await user_factory(verified=False)
    r = await env.start(unverified, target_tier="basic")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "CONTACT_UNVERIFIED"
    user = await user_factory()
    assert (await env.start(user, target_tier="basic")).status_code == 202
    dup = await env.start(user, target_tier="standard")
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "KYC_IN_PROGRESS"
    async with env.worker():
        body = await env.wait_status(user, "approved", "declined")
    assert body["current_tier"] == "basic"


async def test_approval_expiry_reminds_then_drops_the_tier(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = await kyc_env()
    user = await user_factory()
    env.users.append(user.id)
    # Approved 365 days ago less 15 seconds: inside the reminder window, lapsing in 15 seconds
    # (room for a slow worker start on a loaded machine before the reminder is due).
    approved_at = utcnow() - dt.timedelta(days=365) + dt.timedelta(seconds=15)
    async with sessionmaker() as s, s.begin():
        await service.set_tier(
            session=s, user_id=user.id, tier="enhanced", actor_id=None, note=None, now=approved_at
        )
    async with env.worker():
        await env.temporal.start_workflow(
            "KycWorkflow",
            {"user_id": str(user.id), "timing": {"expiry_reminder": 30 * 86_400}},
            id=f"kyc-{user.id}",
            task_queue=env.task_queue,
        )
        for _ in range(450):
            async with sessionmaker() as s:
                tier = (
                    await s.execute(
                        text("SELECT tier FROM kyc_profiles WHERE user_id = :u"), {"u": user.id}
                    )
                ).scalar_one()
            if tier == "none":
                break
            await asyncio.sleep(0.1)
    assert tier == "none"
    async with sessionmaker() as s:
        kinds = (await s.scalars(select(OutboundEmail.kind))).all()
        audit = (
            await s.scalars(select(AuditLog.details).where(AuditLog.action == "kyc.tier"))
        ).all()
    assert "kyc_expiry_reminder" in kinds
    assert any(d and d.get("note") == "approval expired" for d in audit), json.dumps(audit)
