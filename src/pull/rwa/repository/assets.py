"""SQL of assets and their valuations."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from pull.rwa.models import (
    RwaAsset,
    RwaValuation,
)

# --- assets ---------------------------------------------------------------------------------


async def asset_by_cert(session: AsyncSession, grader: str, cert_number: str) -> RwaAsset | None:
    return (
        await session.execute(
            select(RwaAsset).where(RwaAsset.grader == grader, RwaAsset.cert_number == cert_number)
        )
    ).scalar_one_or_none()


async def get_asset(
    session: AsyncSession, asset_id: uuid.UUID, *, lock: bool = False
) -> RwaAsset | None:
    stmt = select(RwaAsset).where(RwaAsset.id == asset_id)
    if lock:  # fresh values with the lock, even if the row was read before unlocked
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def assets_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, RwaAsset]:
    if not ids:
        return {}
    rows = (await session.execute(select(RwaAsset).where(RwaAsset.id.in_(ids)))).scalars()
    return {a.id: a for a in rows}


async def assets_by_seq(session: AsyncSession, seqs: Sequence[int]) -> dict[int, RwaAsset]:
    if not seqs:
        return {}
    rows = (await session.execute(select(RwaAsset).where(RwaAsset.seq.in_(seqs)))).scalars()
    return {a.seq: a for a in rows}


async def list_assets(
    session: AsyncSession,
    *,
    category: str | None,
    states: Sequence[str] | None,
    query: str | None,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[RwaAsset]:
    stmt = select(RwaAsset)
    if category:
        stmt = stmt.where(RwaAsset.category == category)
    if states:
        stmt = stmt.where(RwaAsset.state.in_(states))
    if query:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                RwaAsset.title.ilike(pattern, escape="\\"),
                RwaAsset.description.ilike(pattern, escape="\\"),
                RwaAsset.cert_number == query,
            )
        )
    if before is not None:
        t, i = before
        stmt = stmt.where(
            or_(RwaAsset.created_at < t, and_(RwaAsset.created_at == t, RwaAsset.id < i))
        )
    stmt = stmt.order_by(RwaAsset.created_at.desc(), RwaAsset.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def set_asset_state(
    session: AsyncSession,
    asset_id: uuid.UUID,
    state: str,
    *,
    from_states: Sequence[str],
    locked_until: dt.datetime | None = None,
) -> bool:
    values: dict[str, object] = {"state": state, "updated_at": func.now()}
    if locked_until is not None:
        values["locked_until"] = locked_until
    result = await session.execute(
        update(RwaAsset)
        .where(RwaAsset.id == asset_id, RwaAsset.state.in_(from_states))
        .values(**values)
        .returning(RwaAsset.id)
    )
    return result.scalar_one_or_none() is not None


# --- valuations -----------------------------------------------------------------------------


async def valuations(session: AsyncSession, asset_id: uuid.UUID) -> list[RwaValuation]:
    stmt = (
        select(RwaValuation)
        .where(RwaValuation.asset_id == asset_id)
        .order_by(RwaValuation.as_of.desc(), RwaValuation.id.desc())
        .limit(200)
    )
    return list((await session.execute(stmt)).scalars())


async def latest_valuations(
    session: AsyncSession, asset_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not asset_ids:
        return {}
    stmt = (
        select(RwaValuation.asset_id, RwaValuation.value_cents)
        .where(RwaValuation.asset_id.in_(asset_ids))
        .ext(distinct_on(RwaValuation.asset_id))
        .order_by(RwaValuation.asset_id, RwaValuation.as_of.desc(), RwaValuation.id.desc())
    )
    return {r[0]: r[1] for r in (await session.execute(stmt)).all()}
