"""Portfolio test helpers: traders with cash, and HTTP calls to a real `pull api` process."""

from __future__ import annotations

from typing import Any

import httpx

from tests.exchange.conftest import create_market, fund

__all__ = ["call", "create_market", "fund", "order"]


async def call(base: str, user: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, headers=user.headers, timeout=60) as c:
        return await c.request(method, path, **kw)


async def order(base: str, user: Any, **body: Any) -> dict[str, Any]:
    r = await call(base, user, "POST", "/api/v1/orders", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


# the brokerage's fixtures (traders with a broker account, the sandbox's event drain) and the
# RWA environment (assets, offerings, trading)
from tests.brokerage.conftest import (  # noqa: E402,F401
    drain,
    http,
    market_open,
    sandbox,
    trader_factory,
)
from tests.rewards.conftest import rw  # noqa: E402,F401
from tests.rwa.conftest import rwa_env  # noqa: E402,F401
