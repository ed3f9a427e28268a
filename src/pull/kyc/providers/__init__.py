"""Third-party adapters of the KYC module: a Protocol per vendor, the real httpx client and a
sandbox that behaves like the vendor's own (outcomes chosen by magic values, docs/sandbox.md).

`for_settings` picks the real client when the vendor's API key is set, else the sandbox; a
deployed environment (staging, production) never falls back to a sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from pull.config import Settings
from pull.kyc.providers.base import (
    AccreditationVerifier,
    BackgroundChecker,
    IdentityVerifier,
    ProviderError,
)
from pull.kyc.providers.checkr import CheckrClient
from pull.kyc.providers.parallel_markets import ParallelMarketsClient
from pull.kyc.providers.persona import PersonaClient
from pull.kyc.providers.sandbox import (
    CheckrSandbox,
    ParallelMarketsSandbox,
    PersonaSandbox,
    WebhookDelivery,
)


class NotConfigured(ProviderError):
    code = "PROVIDER_NOT_CONFIGURED"
    message = "A verification provider has no credentials in this environment"


@dataclass(frozen=True)
class Providers:
    identity: IdentityVerifier
    background: BackgroundChecker
    accreditation: AccreditationVerifier


class _Unconfigured:
    def __init__(self, vendor: str) -> None:
        self.vendor = vendor

    async def create_inquiry(self, *args: object, **kwargs: object) -> object:
        raise NotConfigured(f"{self.vendor} API key is not set")

    create_report = create_inquiry
    request_accreditation = create_inquiry


def for_settings(settings: Settings) -> Providers:
    delivery = WebhookDelivery(settings.kyc_webhook_base_url, settings.kyc_sandbox_delay_seconds)
    sandbox_ok = not settings.is_deployed
    identity: IdentityVerifier
    background: BackgroundChecker
    accreditation: AccreditationVerifier
    if settings.persona_api_key:
        identity = PersonaClient(
            api_key=settings.persona_api_key,
            base_url=settings.persona_api_url,
            templates={
                "standard": settings.persona_template_standard,
                "enhanced": settings.persona_template_enhanced,
                "accredited": settings.persona_template_enhanced,
            },
        )
    elif sandbox_ok:
        identity = PersonaSandbox(delivery, settings.persona_webhook_secret)
    else:
        identity = _Unconfigured("Persona")  # type: ignore[assignment]
    if settings.checkr_api_key:
        background = CheckrClient(
            api_key=settings.checkr_api_key,
            base_url=settings.checkr_api_url,
            package=settings.checkr_package,
        )
    elif sandbox_ok:
        background = CheckrSandbox(delivery, settings.checkr_webhook_secret)
    else:
        background = _Unconfigured("Checkr")  # type: ignore[assignment]
    if settings.parallel_markets_api_key:
        accreditation = ParallelMarketsClient(
            api_key=settings.parallel_markets_api_key,
            base_url=settings.parallel_markets_api_url,
        )
    elif sandbox_ok:
        accreditation = ParallelMarketsSandbox(delivery, settings.parallel_markets_webhook_secret)
    else:
        accreditation = _Unconfigured("Parallel Markets")  # type: ignore[assignment]
    return Providers(identity=identity, background=background, accreditation=accreditation)
