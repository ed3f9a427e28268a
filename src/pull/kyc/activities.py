"""Activities of the KYC workflow: one dataclass input each, each its own transaction.

They are idempotent: steps and decisions change only an attempt that is still open, provider
objects are created once per attempt (their ids are stored), reminders carry their number.
Decrypted PII exists only inside an activity, for the provider call; it is never returned.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from pull.kit.crypto import FieldCipher
from pull.kit.db import session_scope
from pull.kit.runtime import worker_runtime
from pull.kyc import attempts
from pull.kyc.applications import Outcome
from pull.kyc.attempts import AttemptPlan, ExpiryState
from pull.kyc.providers import Providers, for_settings
from pull.kyc.sanctions import load_cached


@dataclass(frozen=True)
class ApplicationInput:
    application_id: str


@dataclass(frozen=True)
class StepInput:
    application_id: str
    step: str
    status: str


@dataclass(frozen=True)
class DecideInput:
    application_id: str
    outcome: str
    reason: str | None = None


@dataclass(frozen=True)
class ReminderInput:
    application_id: str
    number: int


@dataclass(frozen=True)
class UserInput:
    user_id: str


@dataclass(frozen=True)
class RefResult:
    """The vendor object's id, or None when the attempt closed meanwhile (cancelled)."""

    ref: str | None


@dataclass(frozen=True)
class ScreeningResult:
    outcome: str  # clear | review | hit | closed


@lru_cache(maxsize=4)
def _cipher(keys: str) -> FieldCipher:
    return FieldCipher(keys)


def _env() -> tuple[FieldCipher, Providers]:
    settings = worker_runtime().settings
    return _cipher(settings.field_encryption_keys), for_settings(settings)


def _maker() -> async_sessionmaker[AsyncSession]:
    return worker_runtime().sessionmaker


@activity.defn(name="kyc_begin")
async def kyc_begin(inp: ApplicationInput) -> AttemptPlan:
    async with session_scope(_maker()) as s:
        return await attempts.begin(session=s, application_id=uuid.UUID(inp.application_id))


@activity.defn(name="kyc_set_step")
async def kyc_set_step(inp: StepInput) -> bool:
    async with session_scope(_maker()) as s:
        return await attempts.set_step(
            session=s,
            application_id=uuid.UUID(inp.application_id),
            step=inp.step,
            step_status=inp.status,
        )


RefColumn = Literal["inquiry_id", "background_check_id", "accreditation_id"]


async def _create_once(inp: ApplicationInput, column: RefColumn, step: str) -> RefResult:
    """Create the vendor object unless this attempt already has one (activity retries)."""
    app_id = uuid.UUID(inp.application_id)
    cipher, providers = _env()
    async with session_scope(_maker()) as s:
        existing = await attempts.existing_ref(session=s, application_id=app_id, column=column)
        if existing:
            return RefResult(existing)
        applicant = await attempts.load_applicant(session=s, application_id=app_id, cipher=cipher)
        if applicant is None:
            return RefResult(None)
        await attempts.set_step(session=s, application_id=app_id, step=step, step_status="running")
    token_enc: str | None = None
    if column == "inquiry_id":
        inquiry = await providers.identity.create_inquiry(applicant, tier=applicant.target_tier)
        ref, token_enc = inquiry.id, cipher.encrypt(inquiry.session_token)
    elif column == "background_check_id":
        ref = await providers.background.create_report(applicant)
    else:
        ref = await providers.accreditation.request_accreditation(applicant)
    async with session_scope(_maker()) as s:
        await attempts.store_ref(
            session=s,
            application_id=app_id,
            column=column,
            ref=ref,
            step=step,
            session_token_enc=token_enc,
        )
    return RefResult(ref)


@activity.defn(name="kyc_create_inquiry")
async def kyc_create_inquiry(inp: ApplicationInput) -> RefResult:
    return await _create_once(inp, "inquiry_id", "identity")


@activity.defn(name="kyc_start_background_check")
async def kyc_start_background_check(inp: ApplicationInput) -> RefResult:
    return await _create_once(inp, "background_check_id", "background")


@activity.defn(name="kyc_start_accreditation")
async def kyc_start_accreditation(inp: ApplicationInput) -> RefResult:
    return await _create_once(inp, "accreditation_id", "accreditation")


@activity.defn(name="kyc_screen_sanctions")
async def kyc_screen_sanctions(inp: ApplicationInput) -> ScreeningResult:
    app_id = uuid.UUID(inp.application_id)
    cipher, _ = _env()
    sanctions = load_cached(worker_runtime().settings.kyc_sanctions_list_path)
    async with session_scope(_maker()) as s:
        applicant = await attempts.load_applicant(session=s, application_id=app_id, cipher=cipher)
        if applicant is None:
            return ScreeningResult("closed")
        result = sanctions.screen(
            first_name=applicant.first_name,
            last_name=applicant.last_name,
            dob=dt.date.fromisoformat(applicant.dob),
        )
    return ScreeningResult(result.outcome)


@activity.defn(name="kyc_decide")
async def kyc_decide(inp: DecideInput) -> str:
    outcome: Outcome
    if inp.outcome == "approved":
        outcome = "approved"
    elif inp.outcome == "manual_review":
        outcome = "manual_review"
    elif inp.outcome == "expired":
        outcome = "expired"
    else:
        outcome = "declined"
    async with session_scope(_maker()) as s:
        return await attempts.decide(
            session=s,
            application_id=uuid.UUID(inp.application_id),
            outcome=outcome,
            reason=inp.reason,
        )


@activity.defn(name="kyc_remind")
async def kyc_remind(inp: ReminderInput) -> bool:
    async with session_scope(_maker()) as s:
        return await attempts.remind(
            session=s,
            application_id=uuid.UUID(inp.application_id),
            number=inp.number,
            settings=worker_runtime().settings,
        )


@activity.defn(name="kyc_expiry_state")
async def kyc_expiry_state(inp: UserInput) -> ExpiryState:
    async with session_scope(_maker()) as s:
        return await attempts.expiry_state(session=s, user_id=uuid.UUID(inp.user_id))


@activity.defn(name="kyc_check_expiry")
async def kyc_check_expiry(inp: UserInput) -> ExpiryState:
    async with session_scope(_maker()) as s:
        return await attempts.check_expiry(
            session=s, user_id=uuid.UUID(inp.user_id), settings=worker_runtime().settings
        )


ACTIVITIES: list[Callable[..., Any]] = [
    kyc_begin,
    kyc_set_step,
    kyc_create_inquiry,
    kyc_start_background_check,
    kyc_start_accreditation,
    kyc_screen_sanctions,
    kyc_decide,
    kyc_remind,
    kyc_expiry_state,
    kyc_check_expiry,
]
