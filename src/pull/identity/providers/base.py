"""Phone verification as a Protocol, shaped after Twilio Verify v2.

The provider keeps the code (Twilio generates, sends and checks it); PULL keeps the rules on
top: expiry, wrong tries and resend limits (pull.identity.phone).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from pull.kit.errors import AppError


class CheckOutcome(StrEnum):
    approved = "approved"
    wrong = "wrong"  # the code did not match; the verification stays pending
    expired = "expired"  # the provider no longer knows a pending verification


@dataclass(frozen=True)
class SentCode:
    reference: str  # Twilio's verification SID (VE...)


class SmsProviderError(AppError):
    """The SMS provider refused or could not be reached."""

    status_code = 502
    code = "SMS_PROVIDER_ERROR"
    message = "The SMS provider failed; try again later"


class PhoneVerifier(Protocol):
    name: str
    is_sandbox: bool

    async def send_code(self, *, session: AsyncSession, to: str) -> SentCode:
        """Send a fresh code by SMS to an E.164 number."""
        ...

    async def check_code(self, *, to: str, reference: str, code: str) -> CheckOutcome: ...
