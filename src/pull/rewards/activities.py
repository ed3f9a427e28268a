"""Activities of the rewards workflows: one dataclass input each, each in its own transaction
and idempotent (redemption status checks, ledger idempotency keys, the provider's external id)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from pull.kit.db import session_scope, utcnow
from pull.kit.runtime import worker_runtime
from pull.rewards import leaderboard, redemption, service
from pull.rewards import repository as repo
from pull.rewards.providers.base import GiftCardDeclined, GiftCardProvider, GiftCardUnavailable
from pull.rewards.providers.factory import make_gift_card_provider

_provider_override: GiftCardProvider | None = None


def set_gift_card_provider(provider: GiftCardProvider | None) -> None:
    """Tests point the worker at a client of a local fake."""
    global _provider_override
    _provider_override = provider


def _provider() -> GiftCardProvider:
    return _provider_override or make_gift_card_provider(worker_runtime().settings)


@dataclass
class RedemptionInput:
    redemption_id: str


@dataclass
class FailInput:
    redemption_id: str
    reason: str


@dataclass
class BatchInput:
    limit: int = 500


@activity.defn(name="rewards_fulfil_redemption")
async def fulfil_redemption(inp: RedemptionInput) -> str:
    """Fulfil a pending redemption; returns its status. A declined gift card raises a
    non-retryable error (the workflow then fails the redemption)."""
    rid = uuid.UUID(inp.redemption_id)
    maker = worker_runtime().sessionmaker
    async with session_scope(maker) as session:
        row = await repo.redemption(session, rid)
        if row is None:
            raise ApplicationError("redemption not found", non_retryable=True)
        if row.status != "pending":
            return row.status
        kind = row.kind
        order = (
            await redemption.gift_card_order(session=session, redemption_id=rid)
            if kind == "gift_card"
            else None
        )
    provider_ref = None
    delivery = None
    if order is not None:
        try:
            result = await _provider().create_order(order)
        except GiftCardDeclined as exc:
            raise ApplicationError(str(exc), type="GiftCardDeclined", non_retryable=True) from exc
        except GiftCardUnavailable as exc:
            raise ApplicationError(str(exc), type="GiftCardUnavailable") from exc
        provider_ref = result.order_id
        delivery = {
            **result.delivery,
            "order_status": result.status,
            "reward_ids": result.reward_ids,
        }
    async with session_scope(maker) as session:
        done = await redemption.complete(
            session=session,
            redemption_id=rid,
            now=utcnow(),
            provider_ref=provider_ref,
            delivery=delivery,
        )
        return done.status


@activity.defn(name="rewards_fail_redemption")
async def fail_redemption(inp: FailInput) -> str:
    async with session_scope(worker_runtime().sessionmaker) as session:
        row = await redemption.fail(
            session=session,
            redemption_id=uuid.UUID(inp.redemption_id),
            reason=inp.reason,
            now=utcnow(),
        )
        return row.status


@activity.defn(name="rewards_expire_batch")
async def expire_batch(inp: BatchInput) -> int:
    async with session_scope(worker_runtime().sessionmaker) as session:
        return await service.expire_batch(session=session, now=utcnow(), limit=inp.limit)


@activity.defn(name="rewards_warn_batch")
async def warn_batch(inp: BatchInput) -> int:
    runtime = worker_runtime()
    async with session_scope(runtime.sessionmaker) as session:
        return await service.warn_batch(
            session=session, settings=runtime.settings, now=utcnow(), limit=inp.limit
        )


@activity.defn(name="rewards_review_batch")
async def review_batch(inp: BatchInput) -> int:
    runtime = worker_runtime()
    async with session_scope(runtime.sessionmaker) as session:
        return await service.review_batch(
            session=session, settings=runtime.settings, now=utcnow(), limit=inp.limit
        )


@activity.defn(name="rewards_rebuild_leaderboard")
async def rebuild_leaderboard(inp: BatchInput) -> int:
    runtime = worker_runtime()
    async with session_scope(runtime.sessionmaker) as session:
        sizes = await leaderboard.rebuild(session=session, redis=runtime.redis, now=utcnow())
    return sum(sizes.values())


ACTIVITIES: list[Callable[..., Any]] = [
    fulfil_redemption,
    fail_redemption,
    expire_batch,
    warn_batch,
    review_batch,
    rebuild_leaderboard,
]
