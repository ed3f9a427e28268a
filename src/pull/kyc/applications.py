"""Verification attempts: starting, status, cancel and retry for the owner; manual review for
admins. Webhook intake is `webhooks.py`; the database side of every workflow activity is
`attempts.py`.

PII is encrypted with the field cipher before it is stored and decrypted only to call a
provider or to show the owner a masked copy. It never goes into logs, outbox payloads, audit
details or workflow inputs (those carry ids only).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.identity import service as identity
from pull.kit.crypto import FieldCipher
from pull.kit.db import utcnow
from pull.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from pull.kit.outbox import emit, signal_workflow_event, start_workflow_event
from pull.kit.pagination import Page, clamp_limit, decode_cursor, encode_cursor
from pull.kyc import repository as repo
from pull.kyc import service
from pull.kyc.limits import WINDOWS
from pull.kyc.models import OPEN_STATUSES, KycApplication
from pull.kyc.providers.base import Address, Applicant
from pull.kyc.schemas import (
    ApplicationRead,
    KycStatusRead,
    LimitRead,
    LimitsRead,
    MaskedPii,
    ReviewRead,
    StartRequest,
    StepRead,
    Tier,
)

log = logging.getLogger("pull.kyc")

WORKFLOW = "KycWorkflow"

PLAN: dict[str, list[str]] = {
    "basic": ["contact", "sanctions"],
    "standard": ["contact", "identity", "sanctions"],
    "enhanced": ["contact", "identity", "sanctions", "background"],
    "accredited": ["contact", "identity", "sanctions", "background", "accreditation"],
}
FINISHED_STEPS = ("passed", "failed", "review", "skipped")

Outcome = Literal["approved", "declined", "manual_review", "expired"]


def workflow_id(user_id: uuid.UUID | str) -> str:
    return f"kyc-{user_id}"


def timing(settings: Settings) -> dict[str, int]:
    """Durations handed to the workflow when it starts (so tests can shorten them)."""
    return {
        "reminder_1": settings.kyc_reminder_1_seconds,
        "reminder_2": settings.kyc_reminder_2_seconds,
        "step_timeout": settings.kyc_step_timeout_seconds,
        "expiry_reminder": settings.kyc_expiry_reminder_days * 86_400,
        "activity_timeout": settings.temporal_activity_start_to_close_timeout,
    }


# --- PII -------------------------------------------------------------------------------------


def _mask(value: str, keep: int = 1) -> str:
    value = value.strip()
    return value[:keep] + "*" * max(len(value) - keep, 3)


def masked_pii(app: KycApplication, cipher: FieldCipher) -> MaskedPii:
    address = json.loads(cipher.decrypt(app.address_enc))
    dob = cipher.decrypt(app.dob_enc)
    phone = cipher.decrypt(app.phone_enc)
    return MaskedPii(
        first_name=_mask(cipher.decrypt(app.first_name_enc)),
        last_name=_mask(cipher.decrypt(app.last_name_enc)),
        dob=dob[:4] + "-**-**",
        address=f"{_mask(address['line1'], 2)}, {_mask(address['city'])}, "
        f"{address['state']} {address['postal_code'][:2]}***",
        phone="*" * max(len(phone) - 2, 3) + phone[-2:],
        ssn_last4="****" if app.ssn_last4_enc else None,
    )


def applicant(app: KycApplication, cipher: FieldCipher, email: str) -> Applicant:
    address = json.loads(cipher.decrypt(app.address_enc))
    return Applicant(
        reference_id=str(app.id),
        user_id=str(app.user_id),
        email=email,
        first_name=cipher.decrypt(app.first_name_enc),
        last_name=cipher.decrypt(app.last_name_enc),
        dob=cipher.decrypt(app.dob_enc),
        address=Address(
            line1=address["line1"],
            line2=address.get("line2"),
            city=address["city"],
            state=address["state"],
            postal_code=address["postal_code"],
            country=address.get("country", "US"),
        ),
        phone=cipher.decrypt(app.phone_enc),
        ssn_last4=cipher.decrypt(app.ssn_last4_enc) if app.ssn_last4_enc else None,
        target_tier=app.target_tier,
    )


# --- reading ---------------------------------------------------------------------------------


def _steps(app: KycApplication) -> list[StepRead]:
    return [
        StepRead(name=name, status=app.steps.get(name, "pending")) for name in PLAN[app.target_tier]
    ]


def _progress(steps: list[StepRead]) -> int:
    if not steps:
        return 0
    done = sum(1 for s in steps if s.status in ("passed", "skipped"))
    return round(100 * done / len(steps))


def application_read(app: KycApplication, cipher: FieldCipher) -> ApplicationRead:
    steps = _steps(app)
    return ApplicationRead(
        id=app.id,
        target_tier=app.target_tier,
        status=app.status,
        steps=steps,
        progress=100 if app.status == "approved" else _progress(steps),
        reason=app.reason,
        created_at=app.created_at,
        updated_at=app.updated_at,
        decided_at=app.decided_at,
        pii=masked_pii(app, cipher),
    )


def _next_action(app: KycApplication | None, tier: Tier) -> str | None:
    if app is None or app.status in ("approved",):
        return None if tier is Tier.accredited else "start"
    if app.status in ("declined", "expired", "cancelled"):
        return "retry"
    if app.status == "manual_review":
        return "wait_for_review"
    if app.steps.get("identity") in ("pending", "running", "waiting") and app.inquiry_id:
        return "complete_identity_verification"
    return "wait"


async def status(
    *, session: AsyncSession, user_id: uuid.UUID, cipher: FieldCipher
) -> KycStatusRead:
    now = utcnow()
    # The application first: a decision commits the application's status and the tier in one
    # transaction, so a profile read after it is at least as new (the other order, under READ
    # COMMITTED, could show "approved" beside the tier from before: seen in a CI run).
    app = await repo.latest_application(session, user_id)
    profile = await repo.profile(session, user_id, fresh=True)
    tier = (
        Tier.none
        if profile is None
        else service.effective_tier(profile.tier, profile.expires_at, now)
    )
    read = application_read(app, cipher) if app is not None else None
    waiting_identity = (
        app is not None
        and app.status in OPEN_STATUSES
        and app.inquiry_id is not None
        and app.steps.get("identity") not in FINISHED_STEPS
    )
    return KycStatusRead(
        current_tier=tier,
        tier_expires_at=profile.expires_at
        if profile is not None and tier is not Tier.none
        else None,
        target_tier=app.target_tier if app is not None else None,
        status=app.status if app is not None else "none",
        steps=read.steps if read else [],
        progress=read.progress if read else 0,
        next_action=_next_action(app, tier),
        inquiry_id=app.inquiry_id if waiting_identity and app is not None else None,
        session_token=(
            cipher.decrypt(app.session_token_enc)
            if waiting_identity and app is not None and app.session_token_enc
            else None
        ),
        application=read,
    )


async def limits(*, session: AsyncSession, user_id: uuid.UUID) -> LimitsRead:
    now = utcnow()
    policy = service.current_policy()
    tier = await service.get_tier(session=session, user_id=user_id, now=now)
    rows: list[LimitRead] = []
    for action, windows in WINDOWS.items():
        for window in windows:
            limit = policy.of(tier, window.limit_name)
            used = await repo.used_since(session, user_id, action, now - window.length)
            in_window = await repo.usage_rows_since(session, user_id, action, now - window.length)
            rows.append(
                LimitRead(
                    action=action,
                    window=window.name,
                    limit_cents=limit,
                    used_cents=used,
                    remaining_cents=max(limit - used, 0),
                    resets_at=in_window[0][0] + window.length if in_window else None,
                )
            )
    return LimitsRead(
        tier=tier,
        limits=rows,
        single_trade_max_cents=policy.of(tier, "single_trade_max"),
        instant_credit_cents=policy.of(tier, "instant_credit"),
    )


# --- the owner's actions ---------------------------------------------------------------------


def _emit_attempt(session: AsyncSession, app: KycApplication, settings: Settings) -> None:
    wf = workflow_id(app.user_id)
    start_workflow_event(
        session,
        workflow=WORKFLOW,
        workflow_id=wf,
        arg={"user_id": str(app.user_id), "timing": timing(settings)},
        task_queue=settings.temporal_task_queue,
        allow_restart=True,
    )
    signal_workflow_event(
        session, workflow_id=wf, signal="attempt", arg={"application_id": str(app.id)}
    )


def _audit(
    session: AsyncSession,
    action: str,
    app: KycApplication,
    actor_id: uuid.UUID | None,
    **details: Any,
) -> None:
    identity.record_audit(
        session,
        action=action,
        actor_id=actor_id,
        resource=f"kyc_application:{app.id}",
        details={"user_id": str(app.user_id), "target_tier": app.target_tier, **details},
    )


async def start(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    data: StartRequest,
    cipher: FieldCipher,
    settings: Settings,
) -> KycStatusRead:
    user = await identity.get_user(session=session, user_id=user_id)
    if user is None:
        raise NotFound("User not found")
    if not (user.email_verified and user.phone_verified):
        raise Forbidden(
            "Verify your email address and phone number first",
            code="CONTACT_UNVERIFIED",
            details={"email_verified": user.email_verified, "phone_verified": user.phone_verified},
        )
    target = Tier(data.target_tier)
    if target.rank >= Tier.enhanced.rank and not data.ssn_last4:
        raise Unprocessable(
            "The last 4 digits of the SSN are required for this tier", code="SSN_REQUIRED"
        )
    await repo.ensure_profile(session, user_id)  # serializes a user's starts
    current = await service.get_tier(session=session, user_id=user_id)
    if current.rank >= target.rank:
        raise Conflict(
            f"You are already verified at {current.value}",
            code="ALREADY_VERIFIED",
            details={"current_tier": current.value},
        )
    if await repo.open_application(session, user_id) is not None:
        raise Conflict("A verification is already in progress", code="KYC_IN_PROGRESS")
    address = data.address.model_dump()
    app = KycApplication(
        id=uuid.uuid4(),
        user_id=user_id,
        target_tier=target.value,
        status="pending",
        steps={"contact": "passed"},
        first_name_enc=cipher.encrypt(data.first_name),
        last_name_enc=cipher.encrypt(data.last_name),
        dob_enc=cipher.encrypt(data.dob.isoformat()),
        address_enc=cipher.encrypt(json.dumps(address)),
        phone_enc=cipher.encrypt(data.phone),
        ssn_last4_enc=cipher.encrypt(data.ssn_last4) if data.ssn_last4 else None,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    repo.add_application(session, app)
    _audit(session, "kyc.started", app, user_id)
    _emit_attempt(session, app, settings)
    await session.flush()
    return await status(session=session, user_id=user_id, cipher=cipher)


async def cancel(
    *, session: AsyncSession, user_id: uuid.UUID, cipher: FieldCipher
) -> KycStatusRead:
    app = await repo.open_application(session, user_id, lock=True)
    if app is None:
        raise Conflict("No verification in progress", code="NO_KYC_IN_PROGRESS")
    app.status = "cancelled"
    app.reason = "cancelled by the user"
    app.decided_at = utcnow()
    _audit(session, "kyc.cancelled", app, user_id)
    signal_workflow_event(
        session,
        workflow_id=workflow_id(user_id),
        signal="cancel",
        arg={"application_id": str(app.id)},
    )
    await session.flush()
    return await status(session=session, user_id=user_id, cipher=cipher)


async def retry(
    *, session: AsyncSession, user_id: uuid.UUID, cipher: FieldCipher, settings: Settings
) -> KycStatusRead:
    await repo.ensure_profile(session, user_id)
    last = await repo.latest_application(session, user_id)
    if last is None or last.status not in ("declined", "expired", "cancelled"):
        raise Conflict(
            "Only a declined, expired or cancelled verification can be retried",
            code="NOTHING_TO_RETRY",
        )
    current = await service.get_tier(session=session, user_id=user_id)
    if current.rank >= Tier(last.target_tier).rank:
        raise Conflict(f"You are already verified at {current.value}", code="ALREADY_VERIFIED")
    app = KycApplication(
        id=uuid.uuid4(),
        user_id=user_id,
        target_tier=last.target_tier,
        status="pending",
        steps={"contact": "passed"},
        first_name_enc=last.first_name_enc,
        last_name_enc=last.last_name_enc,
        dob_enc=last.dob_enc,
        address_enc=last.address_enc,
        phone_enc=last.phone_enc,
        ssn_last4_enc=last.ssn_last4_enc,
        retry_of=last.id,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    repo.add_application(session, app)
    _audit(session, "kyc.retried", app, user_id, retry_of=str(last.id))
    _emit_attempt(session, app, settings)
    await session.flush()
    return await status(session=session, user_id=user_id, cipher=cipher)


# --- manual review (admins) -------------------------------------------------------------------


async def reviews(
    *, session: AsyncSession, cipher: FieldCipher, cursor: str | None, limit: int | None
) -> Page[ReviewRead]:
    size = clamp_limit(limit)
    after_raw = decode_cursor(cursor)
    after = None
    if after_raw is not None:
        try:
            after = (dt.datetime.fromisoformat(after_raw["c"]), uuid.UUID(after_raw["i"]))
        except (KeyError, TypeError, ValueError):
            raise Unprocessable("Invalid cursor", code="INVALID_CURSOR") from None
    rows = list(await repo.applications_in_review(session, after=after, limit=size + 1))
    more = len(rows) > size
    rows = rows[:size]
    items = [
        ReviewRead(
            application_id=a.id,
            user_id=a.user_id,
            target_tier=a.target_tier,
            status=a.status,
            steps=_steps(a),
            reason=a.reason,
            created_at=a.created_at,
            pii=masked_pii(a, cipher),
        )
        for a in rows
    ]
    next_cursor = (
        encode_cursor({"c": rows[-1].created_at.isoformat(), "i": str(rows[-1].id)})
        if more and rows
        else None
    )
    return Page[ReviewRead](items=items, cursor=next_cursor)


async def _in_review(session: AsyncSession, user_id: uuid.UUID) -> KycApplication:
    app = await repo.open_application(session, user_id, lock=True)
    if app is None or app.status != "manual_review":
        raise Conflict("This user has no verification waiting for review", code="NOT_IN_REVIEW")
    return app


def _not_own_review(user_id: uuid.UUID, actor_id: uuid.UUID) -> None:
    """Four eyes: an administrator never decides their own verification."""
    if user_id == actor_id:
        raise Forbidden(
            "An administrator cannot decide their own verification", code="SELF_APPROVAL"
        )


async def approve(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    tier: str,
    note: str,
    actor_id: uuid.UUID,
    cipher: FieldCipher,
) -> ApplicationRead:
    _not_own_review(user_id, actor_id)
    await repo.ensure_profile(session, user_id)
    app = await _in_review(session, user_id)
    granted = await service.set_tier(
        session=session, user_id=user_id, tier=tier, actor_id=actor_id, note=note
    )
    now = utcnow()
    app.status = "approved"
    app.reviewer_id = actor_id
    app.review_note = note
    app.decided_at = now
    app.steps = {**app.steps, **{k: "passed" for k, v in app.steps.items() if v == "review"}}
    _audit(session, "kyc.approved", app, actor_id, tier=granted.value, manual=True)
    _approved_event(session, app, granted)
    signal_workflow_event(
        session,
        workflow_id=workflow_id(user_id),
        signal="review_decided",
        arg={"application_id": str(app.id), "decision": "approved"},
    )
    await session.flush()
    return application_read(app, cipher)


async def reject(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    reason: str,
    actor_id: uuid.UUID,
    cipher: FieldCipher,
) -> ApplicationRead:
    _not_own_review(user_id, actor_id)
    app = await _in_review(session, user_id)
    app.status = "declined"
    app.reason = reason
    app.reviewer_id = actor_id
    app.decided_at = utcnow()
    _audit(session, "kyc.declined", app, actor_id, manual=True)
    _declined_event(session, app, manual=True)
    signal_workflow_event(
        session,
        workflow_id=workflow_id(user_id),
        signal="review_decided",
        arg={"application_id": str(app.id), "decision": "declined"},
    )
    await session.flush()
    return application_read(app, cipher)


def _declined_event(session: AsyncSession, app: KycApplication, *, manual: bool) -> None:
    """`kyc.declined` {user_id, application_id, manual} (the notifications module tells the
    customer; the reason stays internal)."""
    emit(
        session,
        topic="kyc.declined",
        key=str(app.user_id),
        payload={"user_id": str(app.user_id), "application_id": str(app.id), "manual": manual},
    )


def _approved_event(session: AsyncSession, app: KycApplication, tier: Tier) -> None:
    emit(
        session,
        topic="kyc.approved",
        key=str(app.user_id),
        payload={"user_id": str(app.user_id), "tier": tier.value, "application_id": str(app.id)},
    )
