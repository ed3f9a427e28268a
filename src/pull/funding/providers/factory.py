"""Which Plaid: the real client when credentials are set, else the sandbox (never when deployed)."""

from __future__ import annotations

from redis.asyncio import Redis

from pull.config import Settings
from pull.funding.providers.base import PlaidProvider
from pull.funding.providers.sandbox import PlaidSandbox, Starter
from pull.kit.errors import ServiceUnavailable

_real: dict[tuple[str, str, str, str], PlaidProvider] = {}


def make_provider(
    settings: Settings, redis: Redis, *, starter: Starter | None = None
) -> PlaidProvider:
    if settings.plaid_client_id and settings.plaid_secret:
        key = (
            settings.plaid_client_id,
            settings.plaid_secret,
            settings.plaid_env,
            settings.plaid_base_url,
        )
        if key not in _real:
            from pull.funding.providers.plaid import PlaidClient

            _real[key] = PlaidClient(
                client_id=settings.plaid_client_id,
                secret=settings.plaid_secret,
                environment=settings.plaid_env,
                base_url=settings.plaid_base_url,
            )
        return _real[key]
    if settings.is_deployed:
        raise ServiceUnavailable(
            "Bank funding is not configured (PLAID_CLIENT_ID, PLAID_SECRET)",
            code="FUNDING_UNAVAILABLE",
        )
    return PlaidSandbox(redis, key_seed=settings.plaid_sandbox_key_seed, starter=starter)
