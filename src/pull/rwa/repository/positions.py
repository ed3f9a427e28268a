"""SQL of holders' cost bases (rwa_positions)."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from pull.rwa.models import (
    RwaPosition,
)

# --- positions (cost basis) -----------------------------------------------------------------


async def add_cost(
    session: AsyncSession, user_id: uuid.UUID, asset_id: uuid.UUID, cents: int
) -> None:
    """Add (or with a negative amount remove) cost basis of a holder in an asset."""
    await session.execute(
        text(
            "INSERT INTO rwa_positions (user_id, asset_id, cost_basis_cents, updated_at) "
            "VALUES (:u, :a, :c, now()) ON CONFLICT (user_id, asset_id) DO UPDATE SET "
            "cost_basis_cents = GREATEST(rwa_positions.cost_basis_cents + :c, 0), "
            "updated_at = now()"
        ),
        {"u": user_id, "a": asset_id, "c": cents},
    )


async def cost_bases(session: AsyncSession, user_id: uuid.UUID) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        select(RwaPosition.asset_id, RwaPosition.cost_basis_cents).where(
            RwaPosition.user_id == user_id
        )
    )
    return {r[0]: r[1] for r in rows.all()}


async def cost_basis(session: AsyncSession, user_id: uuid.UUID, asset_id: uuid.UUID) -> int:
    value = await session.scalar(
        select(RwaPosition.cost_basis_cents).where(
            RwaPosition.user_id == user_id, RwaPosition.asset_id == asset_id
        )
    )
    return int(value or 0)


async def set_costs(
    session: AsyncSession, asset_id: uuid.UUID, costs: dict[uuid.UUID, int]
) -> None:
    """Set holders' cost bases in an asset, in one statement."""
    if not costs:
        return
    await session.execute(
        text(
            "INSERT INTO rwa_positions (user_id, asset_id, cost_basis_cents, updated_at) "
            "SELECT u, :a, c, now() FROM unnest(CAST(:us AS uuid[]), CAST(:cs AS bigint[])) "
            "AS x(u, c) ON CONFLICT (user_id, asset_id) DO UPDATE SET "
            "cost_basis_cents = EXCLUDED.cost_basis_cents, updated_at = now()"
        ),
        {"a": asset_id, "us": list(costs), "cs": list(costs.values())},
    )
