"""Kalshi-compatible Trade API v2 under `/trade-api/v2` (see `app` and
docs/kalshi-compatibility.md): units, schemas, translation, errors, auth and the routes."""

from pull.exchange.kalshi.app import create_trade_api, install_trade_api
from pull.exchange.kalshi.units import PREFIX

__all__ = ["PREFIX", "create_trade_api", "install_trade_api"]
