"""Activities of the OfferingWorkflow: one dataclass input each, one transaction each, and
idempotent (status checks and ledger idempotency keys)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio import activity

from pull.kit.db import session_scope
from pull.kit.runtime import worker_runtime
from pull.rwa import service
from pull.rwa.offerings import NoticeKind


@dataclass(frozen=True)
class OfferingRef:
    offering_id: str


@dataclass(frozen=True)
class SettleInput:
    offering_id: str
    batch_size: int = 0  # 0: RWA_SETTLE_BATCH_SIZE


@dataclass(frozen=True)
class Finalized:
    asset_id: str
    state: str
    lockup_seconds: int


@dataclass(frozen=True)
class AssetRef:
    asset_id: str


@dataclass(frozen=True)
class NoticeInput:
    offering_id: str
    kind: str  # "opened" | "closing_soon"


@activity.defn(name="rwa_announce_offering")
async def announce_offering(inp: NoticeInput) -> bool:
    """The offering's opening or closing-soon event for the notifications (idempotent there:
    one notification per customer and offering)."""
    kind: NoticeKind = "opened" if inp.kind == "opened" else "closing_soon"
    async with session_scope(worker_runtime().sessionmaker) as session:
        return await service.announce_offering(
            session=session, offering_id=uuid.UUID(inp.offering_id), kind=kind
        )


@activity.defn(name="rwa_close_offering")
async def close_offering(inp: OfferingRef) -> str:
    async with session_scope(worker_runtime().sessionmaker) as session:
        return await service.close_offering(session=session, offering_id=uuid.UUID(inp.offering_id))


@activity.defn(name="rwa_settle_subscriptions")
async def settle_subscriptions(inp: SettleInput) -> int:
    size = inp.batch_size or worker_runtime().settings.rwa_settle_batch_size
    async with session_scope(worker_runtime().sessionmaker) as session:
        return await service.settle_subscriptions(
            session=session, offering_id=uuid.UUID(inp.offering_id), limit=size
        )


@activity.defn(name="rwa_finalize_offering")
async def finalize_offering(inp: OfferingRef) -> Finalized:
    lockup = worker_runtime().settings.rwa_lockup_seconds
    async with session_scope(worker_runtime().sessionmaker) as session:
        offering_id = uuid.UUID(inp.offering_id)
        state = await service.finalize_offering(
            session=session, offering_id=offering_id, lockup_seconds=lockup
        )
        offering = await service.get_offering(session=session, offering_id=offering_id)
    return Finalized(asset_id=str(offering.asset_id), state=state, lockup_seconds=lockup)


@activity.defn(name="rwa_start_trading")
async def start_trading(inp: AssetRef) -> str:
    async with session_scope(worker_runtime().sessionmaker) as session:
        return await service.start_trading(session=session, asset_id=uuid.UUID(inp.asset_id))


@dataclass(frozen=True)
class BuyoutRef:
    buyout_id: str


@dataclass(frozen=True)
class DistributeInput:
    buyout_id: str
    batch_size: int = 0  # 0: RWA_SETTLE_BATCH_SIZE


@activity.defn(name="rwa_decide_buyout")
async def decide_buyout(inp: BuyoutRef) -> str:
    async with session_scope(worker_runtime().sessionmaker) as session:
        return await service.decide_buyout(session=session, buyout_id=uuid.UUID(inp.buyout_id))


@activity.defn(name="rwa_distribute")
async def distribute(inp: DistributeInput) -> int:
    size = inp.batch_size or worker_runtime().settings.rwa_settle_batch_size
    async with session_scope(worker_runtime().sessionmaker) as session:
        return await service.distribute(
            session=session, buyout_id=uuid.UUID(inp.buyout_id), limit=size
        )


@activity.defn(name="rwa_finalize_distribution")
async def finalize_distribution(inp: BuyoutRef) -> str:
    async with session_scope(worker_runtime().sessionmaker) as session:
        return await service.finalize_distribution(
            session=session, buyout_id=uuid.UUID(inp.buyout_id)
        )


ACTIVITIES: list[Callable[..., Any]] = [
    decide_buyout,
    distribute,
    finalize_distribution,
    close_offering,
    settle_subscriptions,
    finalize_offering,
    start_trading,
    announce_offering,
]
