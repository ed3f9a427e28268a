"""What the RWA routers share: the error documentation, the rate-limit tiers, the graders."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request

from pull.kit.ratelimit import general, payment_routes
from pull.rwa.providers import Grader, graders_for

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    429: {"description": "Rate limited"},
}
MONEY: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: {"description": "IDEMPOTENCY_KEY_REQUIRED"},
    403: {"description": "ACCOUNT_RESTRICTED or KYC_REQUIRED {required_tier}"},
    404: {"description": "OFFERING_NOT_FOUND / ASSET_NOT_FOUND"},
    409: {
        "description": "OFFERING_NOT_OPEN, OFFERING_SOLD_OUT {remaining}, "
        "INVESTOR_CAP_EXCEEDED {cap, held}, INSUFFICIENT_FUNDS, IDEMPOTENCY_KEY_REUSED"
    },
    422: {"description": "Invalid input"},
}

relaxed = [Depends(general)]
money = [Depends(payment_routes)]


def graders(request: Request) -> dict[str, Grader]:
    found: dict[str, Grader] | None = getattr(request.app.state, "rwa_graders", None)
    if found is None:
        found = graders_for(request.app.state.settings)
        request.app.state.rwa_graders = found
    return found


Graders = Annotated[dict[str, Grader], Depends(graders)]


# --- public reads -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def subscribe_gate(state: Any) -> AsyncIterator[None]:
    """At most RWA_SUBSCRIBE_CONCURRENCY subscriptions at once per process on the
    one-subscription path, entered before its session: a burst queues here instead of
    holding database connections while it waits for the offering's row."""
    gate: asyncio.Semaphore | None = getattr(state, "rwa_subscribe_gate", None)
    if gate is None:
        gate = asyncio.Semaphore(state.settings.rwa_subscribe_concurrency)
        state.rwa_subscribe_gate = gate
    async with gate:
        yield
