"""Which phone verifier: Twilio Verify when its three settings are set, else the SMS sandbox."""

from __future__ import annotations

from pull.config import Settings
from pull.identity.providers.base import CheckOutcome, PhoneVerifier, SentCode, SmsProviderError
from pull.identity.providers.sandbox import SmsSandbox

__all__ = [
    "CheckOutcome",
    "PhoneVerifier",
    "SentCode",
    "SmsProviderError",
    "SmsSandbox",
    "twilio_configured",
    "verifier_for",
]


def twilio_configured(settings: Settings) -> bool:
    return bool(
        settings.twilio_account_sid
        and settings.twilio_auth_token
        and settings.twilio_verify_service_sid
    )


def verifier_for(settings: Settings) -> PhoneVerifier:
    if twilio_configured(settings):
        from pull.identity.providers.twilio import TwilioVerifier

        return TwilioVerifier(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            service_sid=settings.twilio_verify_service_sid,
            base_url=settings.twilio_verify_base_url,
        )
    # Deployed processes refuse to start without the Twilio settings (REQUIRED_IN_DEPLOYED).
    return SmsSandbox(secret=settings.jwt_secret)
