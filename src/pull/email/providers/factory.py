"""Choose the mail provider: Nylas when NYLAS_API_KEY is set, else the sandbox."""

from __future__ import annotations

from pull.config import Settings
from pull.email.errors import ProviderUnavailable
from pull.email.providers.base import MailProvider
from pull.email.providers.nylas import NylasProvider
from pull.email.providers.sandbox import NylasSandbox


def make_provider(settings: Settings) -> MailProvider:
    if settings.nylas_api_key:
        return NylasProvider(
            api_key=settings.nylas_api_key,
            api_uri=settings.nylas_api_uri,
            client_id=settings.nylas_client_id,
            callback_uri=settings.email_callback_url,
        )
    if settings.is_deployed:
        raise ProviderUnavailable("Email is not configured (NYLAS_API_KEY)")
    return NylasSandbox(
        api_base_url=settings.email_webhook_base_url,
        callback_uri=settings.email_callback_url,
        webhook_secret=settings.nylas_webhook_secret,
        delay=settings.email_sandbox_delay_seconds,
    )
