"""Signed requests and Kalshi's read/write rate-limit tiers for the Trade API."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, Query, Request, Response

from pull.exchange.kalshi.units import DEFAULT_LIMIT
from pull.identity.deps import signed_request_user
from pull.identity.schemas import AuthUser
from pull.kit.errors import NotFound
from pull.kit.pagination import MAX_LIMIT
from pull.kit.ratelimit import OnRedisDown, RateClass, RateLimiter, apply_headers, client_ip

# --- authentication and rate limits ------------------------------------------------------------


async def _hit(
    request: Request,
    response: Response,
    cls: RateClass,
    identity_key: str,
    *,
    cost: int,
    on_redis_down: OnRedisDown,
) -> None:
    limiter: RateLimiter = request.app.state.rate_limiter
    if not limiter.enabled:
        return
    state = await limiter.hit(cls, identity_key, on_redis_down=on_redis_down, cost=cost)
    apply_headers(response, state)


async def public_read(request: Request, response: Response) -> None:
    """Kalshi's read tier, per client IP for unsigned market data."""
    await _hit(
        request,
        response,
        RateClass.kalshi_read,
        f"ip:{client_ip(request)}",
        cost=1,
        on_redis_down=OnRedisDown.fail_open,
    )


Signed = Annotated[AuthUser, Depends(signed_request_user)]


async def signed_read(request: Request, response: Response, user: Signed) -> AuthUser:
    """A signed read: Kalshi's read tier, per user."""
    await _hit(
        request,
        response,
        RateClass.kalshi_read,
        f"user:{user.id}",
        cost=1,
        on_redis_down=OnRedisDown.fail_open,
    )
    return user


async def charge_write(request: Request, response: Response, user: AuthUser, cost: int) -> None:
    """Kalshi's write tier, per user, in fifths of a transaction; fails closed. (Which
    writes a restricted account may make is the book commands' rule.)"""
    await _hit(
        request,
        response,
        RateClass.kalshi_write,
        f"user:{user.id}",
        cost=cost,
        on_redis_down=OnRedisDown.fail_closed,
    )


Reader = Annotated[AuthUser, Depends(signed_read)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="PULL extension: optional key; a retry with it returns the first result",
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size (PULL serves at most 200)")]


def page_limit(limit: int | None) -> int:
    return min(limit or DEFAULT_LIMIT, MAX_LIMIT)


def parse_order_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("Order not found", code="ORDER_NOT_FOUND") from None
