"""The SMS sandbox: behaves like Twilio Verify with test credentials, delivers to a table.

Codes are not stored: each is an HMAC of the verification's reference under a secret of this
deployment, so the sandbox is stateless and checking does the real comparison. The text
message lands in `outbound_sms` (in the caller's transaction), which the sandbox message box
shows (GET /api/v1/sandbox/messages).

Magic numbers (docs/sandbox.md), as Twilio's test numbers behave:
  +15005550001  invalid number (Twilio 60200)       -> 422 INVALID_PHONE
  +15005550009  cannot receive SMS (Twilio 60205)   -> 422 PHONE_NOT_SMS_CAPABLE
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import repository as repo
from pull.identity.models import OutboundSms
from pull.identity.providers.base import CheckOutcome, SentCode
from pull.kit.errors import Unprocessable

INVALID_NUMBER = "+15005550001"
NOT_SMS_CAPABLE = "+15005550009"
CODE_DIGITS = 6


class SmsSandbox:
    name = "sandbox"
    is_sandbox = True

    def __init__(self, *, secret: str, brand: str = "PULL") -> None:
        self._key = hashlib.sha256(b"pull-sms-sandbox:" + secret.encode()).digest()
        self.brand = brand

    def code_for(self, reference: str) -> str:
        digest = hmac.new(self._key, reference.encode(), hashlib.sha256).digest()
        return str(int.from_bytes(digest[:8], "big") % 10**CODE_DIGITS).zfill(CODE_DIGITS)

    async def send_code(self, *, session: AsyncSession, to: str) -> SentCode:
        if to == INVALID_NUMBER:
            raise Unprocessable("Invalid parameter `To`", code="INVALID_PHONE")
        if to == NOT_SMS_CAPABLE:
            raise Unprocessable(
                "This number cannot receive text messages", code="PHONE_NOT_SMS_CAPABLE"
            )
        reference = "VE" + secrets.token_hex(16)
        repo.add_outbound_sms(
            session,
            OutboundSms(
                to_number=to,
                body=f"Your {self.brand} verification code is: {self.code_for(reference)}",
                kind="phone_verification",
            ),
        )
        return SentCode(reference=reference)

    async def check_code(self, *, to: str, reference: str, code: str) -> CheckOutcome:
        if hmac.compare_digest(self.code_for(reference), code):
            return CheckOutcome.approved
        return CheckOutcome.wrong
