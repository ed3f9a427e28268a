"""The real phone verifier: Twilio Verify v2 through the official `twilio` SDK.

The SDK is synchronous (requests); calls run in a worker thread. TWILIO_VERIFY_BASE_URL
points the SDK elsewhere (a local fake in tests) by rewriting the Verify host it calls.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from pull.identity.providers.base import CheckOutcome, SentCode, SmsProviderError
from pull.kit.errors import TooManyRequests, Unprocessable

log = logging.getLogger("pull.identity.twilio")

VERIFY_HOST = "https://verify.twilio.com"
# Twilio error codes we answer with a 4xx of our own (twilio.com/docs/api/errors).
INVALID_PARAMETER = 60200
LANDLINE = 60205
MAX_SEND_ATTEMPTS = 60203
MAX_CHECK_ATTEMPTS = 60202
NOT_FOUND = 20404


class _RebasedHttpClient(TwilioHttpClient):  # type: ignore[misc]  # the SDK is untyped
    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(VERIFY_HOST) and self.base_url != VERIFY_HOST:
            url = self.base_url + url[len(VERIFY_HOST) :]
        return super().request(method, url, *args, **kwargs)


class TwilioVerifier:
    name = "twilio"
    is_sandbox = False

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        service_sid: str,
        base_url: str = VERIFY_HOST,
        timeout: float = 10.0,
    ) -> None:
        # Always our client: it carries the timeout (the SDK's default has none).
        http = _RebasedHttpClient(base_url, timeout)
        self._client = Client(account_sid, auth_token, http_client=http)
        self.service_sid = service_sid

    def _service(self) -> Any:
        return self._client.verify.v2.services(self.service_sid)

    async def send_code(self, *, session: AsyncSession, to: str) -> SentCode:
        try:
            found = await asyncio.to_thread(
                lambda: self._service().verifications.create(to=to, channel="sms")
            )
        except TwilioRestException as exc:
            raise _mapped(exc) from exc
        except TwilioException as exc:
            raise SmsProviderError() from exc
        except OSError as exc:  # requests' connection errors are OSErrors
            raise SmsProviderError() from exc
        return SentCode(reference=str(found.sid))

    async def check_code(self, *, to: str, reference: str, code: str) -> CheckOutcome:
        try:
            found = await asyncio.to_thread(
                lambda: self._service().verification_checks.create(
                    verification_sid=reference, code=code
                )
            )
        except TwilioRestException as exc:
            if exc.status == 404 or exc.code in (NOT_FOUND, MAX_CHECK_ATTEMPTS):
                return CheckOutcome.expired
            raise _mapped(exc) from exc
        except (TwilioException, OSError) as exc:
            raise SmsProviderError() from exc
        return CheckOutcome.approved if found.status == "approved" else CheckOutcome.wrong


def _mapped(exc: TwilioRestException) -> Exception:
    log.warning("twilio error", extra={"status": exc.status, "twilio_code": exc.code})
    if exc.code == INVALID_PARAMETER:
        return Unprocessable("Twilio refused the number", code="INVALID_PHONE")
    if exc.code == LANDLINE:
        return Unprocessable(
            "This number cannot receive text messages", code="PHONE_NOT_SMS_CAPABLE"
        )
    if exc.code == MAX_SEND_ATTEMPTS or exc.status == 429:
        return TooManyRequests(
            "Too many codes sent to this number; try again later",
            code="TOO_MANY_CODES",
            headers={"Retry-After": "600"},
        )
    return SmsProviderError(details={"provider_code": exc.code})
