"""Group commit of `POST /api/v1/rwa/orders` per asset, in each API process.

One asset's book changes one transaction at a time (its row lock), so one order per
transaction caps an asset at one commit's worth of round trips per order. Here the orders
that arrive for an asset while its previous batch is committing wait in the process and go
together into the next batch: one transaction that reads the traders' KYC tiers (one
statement for the batch; an order below the basic tier goes on the one-order path, which
refuses it), claims their Idempotency-Keys
(`claim_many`), places them in arrival order (`placement.place_orders`: one lock, one ledger
round trip, one flush for all), stores their responses (`store_many`) and commits once. An
answer is sent after that commit, so a 201 is durable, and the key's stored response commits
with the order, as with `run_idempotent`.

A batch is all or nothing. When it fails (one order's INSUFFICIENT_FUNDS, a halted asset, a
deadlock, anything), it rolls back and is split in two halves, placed in order, each a batch
again; an order refused alone is answered by the ordinary one-order path (`run_idempotent` +
`place_order` in the request's own session), which gives it its own answer or error; so is an
order whose key was already claimed (a replay, or a concurrent duplicate). The batcher is per
app (`app.state`), one drain task per asset while orders are waiting; `RWA_ORDER_BATCH_MAX`
bounds a batch (1: every order on its own, no batching).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.kit.idempotency import claim_many, store_many
from pull.kyc import service as kyc
from pull.rwa.placement import OrderSpec, place_orders

log = logging.getLogger(__name__)

SCOPE = "POST /api/v1/rwa/orders"


@dataclass(slots=True)
class Pending:
    """One order waiting for its asset's next batch: `done` gets its stored response body,
    or None (answer it on the one-order path)."""

    spec: OrderSpec
    key: str
    request: Any
    done: asyncio.Future[Any | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class OrderBatcher:
    def __init__(
        self, maker: async_sessionmaker[AsyncSession], *, max_batch: int, trading_hours: str
    ) -> None:
        self._maker = maker
        self._max = max_batch
        self._hours = trading_hours
        self._waiting: dict[uuid.UUID, list[Pending]] = {}
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def place(self, asset_id: uuid.UUID, item: Pending) -> Any | None:
        """Queue an order for its asset's next batch; its stored 201 body once that batch
        committed, or None: answer it on the one-order path."""
        self._waiting.setdefault(asset_id, []).append(item)
        if asset_id not in self._tasks:
            task = asyncio.get_running_loop().create_task(self._drain(asset_id))
            self._tasks[asset_id] = task
        return await asyncio.shield(item.done)

    async def _drain(self, asset_id: uuid.UUID) -> None:
        try:
            while queue := self._waiting.get(asset_id):
                batch, self._waiting[asset_id] = queue[: self._max], queue[self._max :]
                await self._run(asset_id, batch)
        finally:
            # No await between the last look at the queue and this: an order queued after it
            # starts a new drain task. If this one was canceled, what still waits goes on the
            # one-order path.
            self._tasks.pop(asset_id, None)
            for item in self._waiting.pop(asset_id, []):
                if not item.done.done():
                    item.done.set_result(None)

    async def _run(self, asset_id: uuid.UUID, batch: list[Pending]) -> None:
        results: list[Any | None] = [None] * len(batch)
        try:
            results = await self._commit(asset_id, batch)
        except Exception:  # a refused or failed batch is split, below
            log.debug("rwa order batch of %d refused", len(batch), exc_info=True)
            if len(batch) > 1:
                # Halves in order, each a batch again: one refused order costs about
                # 2 log2(n) transactions, not n; alone, it goes on the one-order path.
                half = len(batch) // 2
                await self._run(asset_id, batch[:half])
                await self._run(asset_id, batch[half:])
                return
        for item, result in zip(batch, results, strict=True):
            if not item.done.done():
                item.done.set_result(result)

    async def _commit(self, asset_id: uuid.UUID, batch: list[Pending]) -> list[Any | None]:
        results: list[Any | None] = [None] * len(batch)
        seen: set[tuple[str, str]] = set()
        claims: list[tuple[int, Pending]] = []
        async with self._maker() as session, session.begin():
            # The traders' KYC tiers, one read for the batch (trading needs basic): an order
            # below it goes on the one-order path, which answers 403 KYC_REQUIRED.
            tiers = await kyc.get_tiers(
                session=session, user_ids=list({item.spec.user_id for item in batch})
            )
            for i, item in enumerate(batch):
                ident = (str(item.spec.user_id), item.key)
                if tiers[item.spec.user_id].rank < kyc.Tier.basic.rank:
                    continue
                if ident not in seen:  # a key twice in one batch: the second goes on its own
                    seen.add(ident)
                    claims.append((i, item))
            if not claims:
                return results
            ids = await claim_many(
                session,
                [(str(item.spec.user_id), SCOPE, item.key, item.request) for _, item in claims],
            )
            mine = [(i, item, row) for (i, item), row in zip(claims, ids, strict=True) if row]
            if not mine:
                return results
            placed = await place_orders(
                session=session,
                asset_id=asset_id,
                orders=[item.spec for _, item, _ in mine],
                trading_hours=self._hours,
            )
            bodies = await store_many(
                session, [(row, 201, read) for (_, _, row), read in zip(mine, placed, strict=True)]
            )
        for (i, _, _), body in zip(mine, bodies, strict=True):
            results[i] = body
        return results


def batcher_of(state: Any) -> OrderBatcher:
    """The app's batcher (made on first use, from its sessionmaker and settings)."""
    found: OrderBatcher | None = getattr(state, "rwa_order_batcher", None)
    if found is None:
        found = OrderBatcher(
            state.sessionmaker,
            max_batch=state.settings.rwa_order_batch_max,
            trading_hours=state.settings.rwa_trading_hours,
        )
        state.rwa_order_batcher = found
    return found
