"""All SQL of the portfolio module (its own tables only)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from pull.portfolio.models import PortfolioStatement


async def insert_points(
    session: AsyncSession,
    kind: str,
    at: dt.datetime,
    rows: Sequence[tuple[uuid.UUID, int, int, int, int, int]],
) -> int:
    """One set-based insert of (user, equity, cash, holdings, points, net_deposits) rows;
    rows already there are left alone (a rerun writes nothing twice). Returns rows written."""
    if not rows:
        return 0
    cols = list(zip(*rows, strict=True))
    result = await session.execute(
        text(
            "INSERT INTO portfolio_snapshots "
            "(user_id, kind, at, equity, cash, holdings, points, net_deposits) "
            "SELECT u, :kind, :at, e, c, h, p, n FROM unnest("
            "CAST(:u AS uuid[]), CAST(:e AS bigint[]), CAST(:c AS bigint[]), "
            "CAST(:h AS bigint[]), CAST(:p AS bigint[]), CAST(:n AS bigint[])) "
            "AS t(u, e, c, h, p, n) "
            "ON CONFLICT (user_id, kind, at) DO NOTHING"
        ),
        {
            "kind": kind,
            "at": at,
            "u": list(cols[0]),
            "e": list(cols[1]),
            "c": list(cols[2]),
            "h": list(cols[3]),
            "p": list(cols[4]),
            "n": list(cols[5]),
        },
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def points_between(
    session: AsyncSession,
    user_id: uuid.UUID,
    kinds: Sequence[str],
    start: dt.datetime | None,
    end: dt.datetime,
) -> list[tuple[dt.datetime, int, int]]:
    """(at, equity, net_deposits) of the user's points of `kinds` in [start, end), oldest first,
    plus the last one before `start` (the period's base)."""
    rows = await session.execute(
        text(
            "(SELECT at, equity, net_deposits FROM portfolio_snapshots "
            "  WHERE user_id = :u AND kind = ANY(:k) "
            "  AND at < COALESCE(CAST(:start AS timestamptz), '-infinity') "
            "  ORDER BY at DESC LIMIT 1) "
            "UNION ALL "
            "(SELECT at, equity, net_deposits FROM portfolio_snapshots "
            "  WHERE user_id = :u AND kind = ANY(:k) "
            "  AND at >= COALESCE(CAST(:start AS timestamptz), '-infinity') AND at < :end) "
            "ORDER BY 1"
        ),
        {"u": user_id, "k": list(kinds), "start": start, "end": end},
    )
    return [(r[0], int(r[1]), int(r[2])) for r in rows.all()]


async def count_points(session: AsyncSession, kind: str, at: dt.datetime) -> int:
    row = await session.execute(
        text("SELECT count(*) FROM portfolio_snapshots WHERE kind = :k AND at = :at"),
        {"k": kind, "at": at},
    )
    return int(row.scalar_one())


async def last_point_at(session: AsyncSession, kind: str) -> dt.datetime | None:
    row = await session.execute(
        text("SELECT max(at) FROM portfolio_snapshots WHERE kind = :k"), {"k": kind}
    )
    value = row.scalar_one()
    return value if isinstance(value, dt.datetime) else None


# --- statements -----------------------------------------------------------------------------


async def insert_statement(
    session: AsyncSession, user_id: uuid.UUID, month: str, pdf: bytes, csv: bytes
) -> bool:
    """Store a statement unless the user already has one for `month` (True when written)."""
    result = await session.execute(
        text(
            "INSERT INTO portfolio_statements (id, user_id, month, pdf, csv, created_at) "
            "VALUES (gen_random_uuid(), :u, :m, :pdf, :csv, now()) "
            "ON CONFLICT (user_id, month) DO NOTHING"
        ),
        {"u": user_id, "m": month, "pdf": pdf, "csv": csv},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def statements_page(
    session: AsyncSession,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[PortfolioStatement]:
    """Newest first; `limit` rows after the (created_at, id) key `before`."""
    stmt = select(PortfolioStatement).where(PortfolioStatement.user_id == user_id)
    if before is not None:
        stmt = stmt.where(
            tuple_(PortfolioStatement.created_at, PortfolioStatement.id) < tuple_(*before)
        )
    stmt = stmt.order_by(PortfolioStatement.created_at.desc(), PortfolioStatement.id.desc())
    return list((await session.scalars(stmt.limit(limit))).all())


async def statement_of(
    session: AsyncSession, user_id: uuid.UUID, statement_id: uuid.UUID
) -> PortfolioStatement | None:
    stmt = select(PortfolioStatement).where(
        PortfolioStatement.id == statement_id, PortfolioStatement.user_id == user_id
    )
    return (await session.scalars(stmt)).one_or_none()


async def users_with_statement(
    session: AsyncSession, user_ids: Sequence[uuid.UUID], month: str
) -> set[uuid.UUID]:
    rows = await session.execute(
        text("SELECT user_id FROM portfolio_statements WHERE month = :m AND user_id = ANY(:u)"),
        {"m": month, "u": list(user_ids)},
    )
    return {r[0] for r in rows.all()}
