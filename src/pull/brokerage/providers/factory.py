"""Which broker: Alpaca when ALPACA_BROKER_KEY and ALPACA_BROKER_SECRET are set, else the
sandbox (never when deployed)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.brokerage.errors import BrokerageUnavailable
from pull.brokerage.providers.base import Broker
from pull.brokerage.providers.sandbox import SandboxBroker
from pull.config import Settings

_real: dict[tuple[str, ...], Broker] = {}


def make_broker(settings: Settings, maker: async_sessionmaker[AsyncSession]) -> Broker:
    if settings.alpaca_broker_key and settings.alpaca_broker_secret:
        key = (
            settings.alpaca_broker_key,
            settings.alpaca_broker_secret,
            settings.alpaca_broker_base_url,
            settings.alpaca_data_url,
            settings.alpaca_firm_account_id,
        )
        if key not in _real:
            from pull.brokerage.providers.alpaca import AlpacaBroker

            _real[key] = AlpacaBroker(
                key=settings.alpaca_broker_key,
                secret=settings.alpaca_broker_secret,
                base_url=settings.alpaca_broker_base_url,
                data_url=settings.alpaca_data_url,
                firm_account_id=settings.alpaca_firm_account_id,
            )
        return _real[key]
    if settings.is_deployed:
        raise BrokerageUnavailable(
            "The broker is not configured (ALPACA_BROKER_KEY, ALPACA_BROKER_SECRET)"
        )
    return SandboxBroker(maker, poll_seconds=settings.brokerage_event_poll_seconds)
