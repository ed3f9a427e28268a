"""Rate limits by class, counted in Redis.

When Redis is unreachable: money routes fail closed (503), auth routes fall back to a
per-process in-memory window with the same limits (so login keeps working but is still
limited), and everything else fails open. See docs/rate-limits.md.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Request, Response
from limits import RateLimitItem, RateLimitItemPerMinute, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis

from pull.kit.errors import ServiceUnavailable, TooManyRequests
from pull.kit.tokens import peek_user_id

log = logging.getLogger("pull.ratelimit")


class RateClass(StrEnum):
    anonymous = "anonymous"
    authenticated = "authenticated"
    auth = "auth"
    payments = "payments"
    trading = "trading"
    # Kalshi-compatible Trade API (/trade-api/v2): Kalshi's Basic tier, reads and writes apart.
    kalshi_read = "kalshi_read"
    kalshi_write = "kalshi_write"
    # Provider webhooks (/webhooks/*), per source IP, before any verification or outbound call.
    webhook = "webhook"
    # Chat messages a customer sends through PULL (docs/messaging.md), per user.
    messaging = "messaging"


LIMITS: dict[RateClass, RateLimitItem] = {
    RateClass.anonymous: RateLimitItemPerMinute(30),
    RateClass.authenticated: RateLimitItemPerMinute(100),
    RateClass.auth: parse("10 per 15 minutes"),
    RateClass.payments: parse("5 per 10 minutes"),
    # Trading clients place many orders; the runbook has no figure, Kalshi's basic tier is 10/s.
    RateClass.trading: parse("600 per minute"),
    # Kalshi's Basic tier: 20 reads and 10 writes per second. Writes are counted in fifths of a
    # transaction (an order costs 5, each cancel of a batch 1, as Kalshi counts it 0.2).
    RateClass.kalshi_read: parse("20 per second"),
    RateClass.kalshi_write: parse("50 per second"),
    # Plaid and the KYC providers send a few events per user action; 120/min per sender is ample.
    RateClass.webhook: parse("120 per minute"),
    # Chat: a burst of a few messages, about one a second sustained.
    RateClass.messaging: parse("30 per 30 seconds"),
}


class OnRedisDown(StrEnum):
    fail_open = "open"
    fail_closed = "closed"
    local = "local"


@dataclass(frozen=True)
class RateState:
    limit: int
    remaining: int
    reset_at: float


# Sliding-window counter in one round trip: the weighted count of the previous window plus the
# current one decides; the reply carries what the response headers need. Redis's clock is used
# so that API pods with drifting clocks agree.
_SLIDING_WINDOW = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local idx = math.floor(now / window)
local cur_key = KEYS[1] .. ":" .. idx
local cur = tonumber(redis.call("GET", cur_key) or "0")
local prev = tonumber(redis.call("GET", KEYS[1] .. ":" .. (idx - 1)) or "0")
local elapsed = now - idx * window
local weighted = math.ceil(prev * (window - elapsed) / window) + cur
local allowed = 0
if weighted + cost <= limit then
  redis.call("INCRBY", cur_key, cost)
  redis.call("PEXPIRE", cur_key, window * 2)
  weighted = weighted + cost
  allowed = 1
end
return {allowed, limit - weighted, (idx + 1) * window}
"""


class RateLimiter:
    def __init__(self, redis: Redis, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._script = redis.register_script(_SLIDING_WINDOW)
        self._local = SlidingWindowCounterRateLimiter(MemoryStorage())

    async def _hit_redis(self, item: RateLimitItem, key: str, cost: int) -> tuple[bool, RateState]:
        window_ms = item.get_expiry() * 1000
        allowed, remaining, reset_ms = await self._script(
            keys=[f"rl:{key}"], args=[item.amount, window_ms, cost]
        )
        return bool(allowed), RateState(item.amount, max(int(remaining), 0), int(reset_ms) / 1000)

    async def _hit_local(self, item: RateLimitItem, key: str, cost: int) -> tuple[bool, RateState]:
        allowed = await self._local.hit(item, key, cost=cost)
        stats = await self._local.get_window_stats(item, key)
        return allowed, RateState(item.amount, stats.remaining, stats.reset_time)

    async def hit(
        self, cls: RateClass, identity: str, *, on_redis_down: OnRedisDown, cost: int = 1
    ) -> RateState | None:
        """Count one request; raises 429 over the limit. None when not counted (fail open)."""
        item = LIMITS[cls]
        key = f"{cls.value}:{identity}"
        try:
            allowed, state = await self._hit_redis(item, key, cost)
        except Exception as exc:
            log.warning("rate limit store unavailable", extra={"error": type(exc).__name__})
            if on_redis_down is OnRedisDown.fail_open:
                return None
            if on_redis_down is OnRedisDown.fail_closed:
                raise ServiceUnavailable(
                    "Rate limiting is unavailable; money operations are paused",
                    code="DEPENDENCY_UNAVAILABLE",
                    headers={"Retry-After": "5"},
                ) from exc
            allowed, state = await self._hit_local(item, key, cost)
        if not allowed:
            retry = max(1, math.ceil(state.reset_at - time.time()))
            raise TooManyRequests(
                "Rate limit exceeded",
                details={"limit": state.limit, "class": cls.value, "retry_after": retry},
                headers={**rate_headers(state), "Retry-After": str(retry)},
            )
        return state


def rate_headers(state: RateState) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(state.limit),
        "X-RateLimit-Remaining": str(max(state.remaining, 0)),
        "X-RateLimit-Reset": str(math.ceil(state.reset_at)),
    }


def client_ip(request: Request) -> str:
    if request.app.state.settings.trust_proxy:
        forwarded = request.headers.get("x-forwarded-for", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return request.client.host if request.client else "unknown"


def apply_headers(response: Response, state: RateState | None) -> None:
    if state is not None:
        response.headers.update(rate_headers(state))


def limit(
    cls: RateClass, *, on_redis_down: OnRedisDown
) -> Callable[[Request, Response], Awaitable[None]]:
    """A dependency counting the request under `cls`, keyed by user when known, else by IP."""

    async def dependency(request: Request, response: Response) -> None:
        limiter: RateLimiter = request.app.state.rate_limiter
        if not limiter.enabled:
            return
        user_id = peek_user_id(request, request.app.state.settings)
        if cls is RateClass.anonymous and user_id is not None:
            effective, identity = RateClass.authenticated, f"user:{user_id}"
        elif (
            cls
            in (RateClass.payments, RateClass.trading, RateClass.authenticated, RateClass.messaging)
            and user_id
        ):
            effective, identity = cls, f"user:{user_id}"
        else:
            effective, identity = cls, f"ip:{client_ip(request)}"
        state = await limiter.hit(effective, identity, on_redis_down=on_redis_down)
        apply_headers(response, state)

    return dependency


# The usual route classes.
general = limit(RateClass.anonymous, on_redis_down=OnRedisDown.fail_open)
auth_routes = limit(RateClass.auth, on_redis_down=OnRedisDown.local)
payment_routes = limit(RateClass.payments, on_redis_down=OnRedisDown.fail_closed)
trading_routes = limit(RateClass.trading, on_redis_down=OnRedisDown.fail_closed)
# Webhooks: per source IP; without Redis, counted in process memory (still limited).
webhook_routes = limit(RateClass.webhook, on_redis_down=OnRedisDown.local)
# Chat sends: per user; without Redis, counted in process memory.
messaging_routes = limit(RateClass.messaging, on_redis_down=OnRedisDown.local)
