"""Which gift-card provider: Tremendous when TREMENDOUS_API_KEY is set, else the sandbox."""

from __future__ import annotations

from pull.config import Settings
from pull.rewards.providers.base import GiftCardProvider
from pull.rewards.providers.sandbox import GiftCardSandbox
from pull.rewards.providers.tremendous import TremendousClient


def make_gift_card_provider(settings: Settings) -> GiftCardProvider:
    if settings.tremendous_api_key:
        return TremendousClient(
            api_key=settings.tremendous_api_key,
            base_url=settings.tremendous_base_url,
            funding_source_id=settings.tremendous_funding_source_id,
        )
    return GiftCardSandbox()
