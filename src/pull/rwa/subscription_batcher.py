"""Group commit of `POST /api/v1/rwa/offerings/{id}/subscribe` per offering, in each API
process (the hot drop).

One subscription per transaction serializes a drop on the offering's row (and its escrow
account), each holding them for a round trip and a commit. Here the subscriptions that arrive
for an offering while its previous batch commits wait in the process (`kit.group_commit`) and
go together into the next batch: one transaction that reads the offering and the
subscribers' KYC tiers (`subscriptions.admit`), claims the admitted requests'
Idempotency-Keys (`claim_many`), holds each one's cash and counts them all into the offering
in one conditional statement (`subscriptions.subscribe_many`), stores their responses
(`store_many`) and commits once. A 201 is sent after that commit, and its stored response
commits with the subscription, as with `run_idempotent`.

What a batch does not admit (sold out, below the KYC tier, over the cap, a second request of
one investor, a key already used: a replay or a concurrent duplicate) is answered on the
one-subscription path (`run_idempotent` + `prepare_subscription` in a session of its own),
which gives it its own answer or error. A batch is all or nothing: when it fails (one
INSUFFICIENT_FUNDS, an investor over the cap, a deadlock, anything) it rolls back and is split
in two halves, each a batch again; a request refused alone goes on the one-subscription path.
`RWA_SUBSCRIBE_BATCH_MAX` bounds a batch (1: no batching).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.kit.db import session_scope, utcnow
from pull.kit.group_commit import GroupCommit
from pull.kit.idempotency import claim_many, store_many
from pull.rwa.subscriptions import admit, subscribe_many

log = logging.getLogger(__name__)


def scope_of(offering_id: uuid.UUID) -> str:
    return f"POST /api/v1/rwa/offerings/{offering_id}/subscribe"


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    user_id: uuid.UUID
    shares: int
    key: str
    request: Any  # the request body, as run_idempotent hashes it


class SubscriptionBatcher:
    def __init__(self, maker: async_sessionmaker[AsyncSession], *, max_batch: int) -> None:
        self._maker = maker
        self.group: GroupCommit[uuid.UUID, SubscriptionRequest, Any | None] = GroupCommit(
            self._run, max_batch=max_batch
        )

    async def subscribe(self, offering_id: uuid.UUID, item: SubscriptionRequest) -> Any | None:
        """Queue a subscription for its offering's next batch: its stored 201 body once that
        batch committed, or None: answer it on the one-subscription path."""
        return await self.group.submit(offering_id, item)

    async def _run(
        self, offering_id: uuid.UUID, batch: Sequence[SubscriptionRequest]
    ) -> list[Any | None]:
        try:
            return await self._commit(offering_id, batch)
        except Exception:  # a refused or failed batch is split, below
            log.debug("rwa subscription batch of %d refused", len(batch), exc_info=True)
            if len(batch) == 1:
                return [None]
            half = len(batch) // 2
            return [
                *await self._run(offering_id, batch[:half]),
                *await self._run(offering_id, batch[half:]),
            ]

    async def _commit(
        self, offering_id: uuid.UUID, batch: Sequence[SubscriptionRequest]
    ) -> list[Any | None]:
        results: list[Any | None] = [None] * len(batch)
        now = utcnow()
        scope = scope_of(offering_id)
        async with session_scope(self._maker) as session:
            admitted = await admit(
                session=session,
                offering_id=offering_id,
                requests=[(b.user_id, b.shares) for b in batch],
                now=now,
            )
            if admitted is None:
                return results
            chosen = [i for i, ok in enumerate(admitted.taken) if ok]
            ids = await claim_many(
                session,
                [(str(batch[i].user_id), scope, batch[i].key, batch[i].request) for i in chosen],
            )
            mine = [(i, row) for i, row in zip(chosen, ids, strict=True) if row is not None]
            if not mine:
                return results
            made = await subscribe_many(
                session=session,
                admitted=admitted,
                requests=[(batch[i].user_id, batch[i].shares) for i, _ in mine],
                now=now,
            )
            bodies = await store_many(
                session, [(row, 201, read) for (_, row), read in zip(mine, made, strict=True)]
            )
        for (i, _), body in zip(mine, bodies, strict=True):
            results[i] = body
        return results


def subscription_batcher_of(state: Any) -> SubscriptionBatcher:
    """The app's batcher (made on first use, from its sessionmaker and settings)."""
    found: SubscriptionBatcher | None = getattr(state, "rwa_subscription_batcher", None)
    if found is None:
        found = SubscriptionBatcher(
            state.sessionmaker, max_batch=state.settings.rwa_subscribe_batch_max
        )
        state.rwa_subscription_batcher = found
    return found
