"""Closed tax lots of a year, and their IRS Form 8949 rows (CSV)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from pull.portfolio import service
from pull.portfolio.errors import InvalidYear
from pull.portfolio.schemas import RealizedLotRead

FORM_8949_HEADER = [
    "Part",
    "Box",
    "(a) Description of property",
    "(b) Date acquired",
    "(c) Date sold or disposed of",
    "(d) Proceeds (sales price)",
    "(e) Cost or other basis",
    "(f) Code(s) from instructions",
    "(g) Amount of adjustment",
    "(h) Gain or (loss)",
]


def check_year(year: int, now: dt.datetime) -> None:
    if not 2000 <= year <= now.year + 1:
        raise InvalidYear(details={"year": year})


async def closed_in_year(
    *, session: AsyncSession, user_id: uuid.UUID, year: int, now: dt.datetime
) -> list[RealizedLotRead]:
    """The user's lots closed (sold, netted, settled) in `year` (UTC), by sale time."""
    check_year(year, now)
    out = []
    for inst, lot in await service.closed_lots(session=session, user_id=user_id, now=now):
        if lot.sold.astimezone(dt.UTC).year != year:
            continue
        out.append(
            RealizedLotRead(
                symbol=inst.symbol,
                kind=inst.kind,
                description=f"{lot.quantity.normalize():f} {inst.symbol} ({inst.name})"[:200],
                quantity=lot.quantity,
                acquired_at=lot.acquired,
                sold_at=lot.sold,
                proceeds=lot.proceeds,
                cost=lot.cost,
                gain=lot.gain,
                holding_period="long" if lot.long_term else "short",
            )
        )
    return out


def _dollars(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def form_8949_csv(lots: Sequence[RealizedLotRead]) -> str:
    """One row per closed lot: Part I (short-term) rows first, then Part II (long-term). The
    box is C / F (transactions not reported to the customer on a Form 1099-B)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FORM_8949_HEADER)
    for part, box, period in (("I", "C", "short"), ("II", "F", "long")):
        for lot in lots:
            if lot.holding_period != period:
                continue
            w.writerow(
                [
                    part,
                    box,
                    lot.description,
                    lot.acquired_at.strftime("%m/%d/%Y"),
                    lot.sold_at.strftime("%m/%d/%Y"),
                    _dollars(lot.proceeds),
                    _dollars(lot.cost),
                    "",
                    "",
                    _dollars(lot.gain),
                ]
            )
    return buf.getvalue()
