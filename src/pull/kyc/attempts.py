"""The database side of every KYC workflow activity (each called in its own transaction):
beginning an attempt, step states, provider references, the decision, reminders, expiry."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.identity import service as identity
from pull.identity.mailer import Email, sender_for
from pull.kit.crypto import FieldCipher
from pull.kit.db import utcnow
from pull.kyc import repository as repo
from pull.kyc import service
from pull.kyc.applications import (
    PLAN,
    Outcome,
    _approved_event,
    _audit,
    _declined_event,
    applicant,
)
from pull.kyc.models import OPEN_STATUSES
from pull.kyc.providers.base import Applicant
from pull.kyc.schemas import (
    Tier,
)

log = logging.getLogger("pull.kyc")


# --- the workflow's side (called by activities, each in its own transaction) --------------------


@dataclass(frozen=True)
class AttemptPlan:
    application_id: str
    user_id: str
    target_tier: str
    steps: list[str]
    open: bool


async def begin(*, session: AsyncSession, application_id: uuid.UUID) -> AttemptPlan:
    app = await repo.application(session, application_id, lock=True)
    if app is None:
        return AttemptPlan(str(application_id), "", "none", [], False)
    if app.status == "pending":
        app.status = "in_progress"
        app.steps = {name: app.steps.get(name, "pending") for name in PLAN[app.target_tier]}
    await session.flush()
    return AttemptPlan(
        str(app.id),
        str(app.user_id),
        app.target_tier,
        PLAN[app.target_tier],
        app.status in ("in_progress", "manual_review"),
    )


async def set_step(
    *, session: AsyncSession, application_id: uuid.UUID, step: str, step_status: str
) -> bool:
    """Record a step's status while the attempt is open; False when it is closed."""
    app = await repo.application(session, application_id, lock=True)
    if app is None or app.status not in OPEN_STATUSES:
        return False
    app.steps = {**app.steps, step: step_status}
    await session.flush()
    return True


async def load_applicant(
    *, session: AsyncSession, application_id: uuid.UUID, cipher: FieldCipher
) -> Applicant | None:
    app = await repo.application(session, application_id)
    if app is None or app.status not in OPEN_STATUSES:
        return None
    user = await identity.get_user(session=session, user_id=app.user_id)
    return applicant(app, cipher, user.email if user else "")


async def store_ref(
    *,
    session: AsyncSession,
    application_id: uuid.UUID,
    column: Literal["inquiry_id", "background_check_id", "accreditation_id"],
    ref: str,
    step: str,
    session_token_enc: str | None = None,
) -> None:
    app = await repo.application(session, application_id, lock=True)
    if app is None:
        return
    setattr(app, column, ref)
    if session_token_enc is not None:
        app.session_token_enc = session_token_enc
    if app.status in OPEN_STATUSES:
        app.steps = {**app.steps, step: "waiting"}
    await session.flush()


async def existing_ref(
    *,
    session: AsyncSession,
    application_id: uuid.UUID,
    column: Literal["inquiry_id", "background_check_id", "accreditation_id"],
) -> str | None:
    app = await repo.application(session, application_id)
    return None if app is None else getattr(app, column)


async def decide(
    *,
    session: AsyncSession,
    application_id: uuid.UUID,
    outcome: Outcome,
    reason: str | None,
) -> str:
    """Close (or send to review) an open attempt; a closed one is left as it is. Returns the
    application's status afterwards."""
    app = await repo.application(session, application_id, lock=True)
    if app is None:
        return "missing"
    if app.status not in ("in_progress", "pending") and not (
        app.status == "manual_review" and outcome != "manual_review"
    ):
        return app.status
    now = utcnow()
    if outcome == "approved":
        await repo.ensure_profile(session, app.user_id)
        target = Tier(app.target_tier)
        current = await service.get_tier(session=session, user_id=app.user_id, now=now)
        granted = current if current.rank > target.rank else target
        if current.rank <= target.rank:
            await service.set_tier(
                session=session,
                user_id=app.user_id,
                tier=target,
                actor_id=None,
                note=f"verification {app.id}",
                now=now,
            )
        app.status = "approved"
        app.decided_at = now
        _audit(session, "kyc.approved", app, None, tier=granted.value, manual=False)
        _approved_event(session, app, granted)
    elif outcome == "manual_review":
        app.status = "manual_review"
        app.reason = reason
        _audit(session, "kyc.review", app, None, reason=reason)
    else:
        app.status = outcome
        app.reason = reason
        app.decided_at = now
        _audit(session, f"kyc.{outcome}", app, None, reason=reason)
        if outcome == "declined":
            _declined_event(session, app, manual=False)
    await session.flush()
    return app.status


async def remind(
    *, session: AsyncSession, application_id: uuid.UUID, number: int, settings: Settings
) -> bool:
    """Email the user that their verification waits for them (once per reminder number)."""
    app = await repo.application(session, application_id, lock=True)
    if app is None or app.status not in OPEN_STATUSES or app.reminders_sent >= number:
        return False
    user = await identity.get_user(session=session, user_id=app.user_id)
    if user is None:
        return False
    app.reminders_sent = number
    await sender_for(settings).send(
        session=session,
        email=Email(
            to=user.email,
            subject="Finish verifying your identity",
            body="Your PULL identity verification is waiting for you. Open the app to finish "
            "it; unfinished verifications expire after 7 days.\n",
            kind="kyc_reminder",
        ),
    )
    _audit(session, "kyc.reminder", app, None, number=number)
    await session.flush()
    return True


@dataclass(frozen=True)
class ExpiryState:
    tier: str
    expires_at: str | None  # ISO; None when nothing lapses
    reminded: bool


async def expiry_state(*, session: AsyncSession, user_id: uuid.UUID) -> ExpiryState:
    row = await repo.profile(session, user_id)
    if row is None or row.tier == "none" or row.expires_at is None:
        return ExpiryState("none", None, False)
    return ExpiryState(row.tier, row.expires_at.isoformat(), row.expiry_reminded_at is not None)


async def check_expiry(
    *, session: AsyncSession, user_id: uuid.UUID, settings: Settings, now: dt.datetime | None = None
) -> ExpiryState:
    """Remind before an approval lapses (once) and drop the tier once it has."""
    now = now or utcnow()
    row = await repo.profile(session, user_id, lock=True)
    if row is None or row.tier == "none" or row.expires_at is None:
        return ExpiryState("none", None, False)
    if row.expires_at <= now:
        await service.set_tier(
            session=session,
            user_id=user_id,
            tier=Tier.none,
            actor_id=None,
            note="approval expired",
            now=now,
        )
        return ExpiryState("none", None, False)
    remind_from = row.expires_at - dt.timedelta(days=settings.kyc_expiry_reminder_days)
    if row.expiry_reminded_at is None and now >= remind_from:
        user = await identity.get_user(session=session, user_id=user_id)
        if user is not None:
            await sender_for(settings).send(
                session=session,
                email=Email(
                    to=user.email,
                    subject="Your identity verification is about to expire",
                    body=f"Your PULL verification ({row.tier}) expires on "
                    f"{row.expires_at.date().isoformat()}. Verify again in the app to keep your "
                    "limits.\n",
                    kind="kyc_expiry_reminder",
                ),
            )
        row.expiry_reminded_at = now
        identity.record_audit(
            session,
            action="kyc.expiry_reminder",
            resource=f"user:{user_id}",
            details={"tier": row.tier},
        )
    await session.flush()
    return ExpiryState(row.tier, row.expires_at.isoformat(), row.expiry_reminded_at is not None)
