"""Monthly statements: a PDF (fpdf2) with balances, holdings, activity, fees and the equity
chart, and a CSV of every ledger entry of the month. Built from the modules' services and the
portfolio's own points; stored once per (user, month)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from dataclasses import dataclass

from fpdf import FPDF
from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.kit.errors import BadRequest
from pull.ledger import service as ledger
from pull.ledger.schemas import Transaction
from pull.portfolio import chart, snapshots
from pull.portfolio import history as hist
from pull.portfolio import repository as repo
from pull.portfolio.lots import replay
from pull.portfolio.service import gather

CSV_HEADER = [
    "created_at",
    "entry_id",
    "transfer_id",
    "kind",
    "account",
    "currency",
    "amount",
    "balance_after",
    "status",
    "reference",
]


def month_range(month: str) -> tuple[dt.datetime, dt.datetime]:
    """[first instant, first instant of the next month) in UTC of "YYYY-MM"."""
    try:
        year, mon = (int(p) for p in month.split("-"))
        start = dt.datetime(year, mon, 1, tzinfo=dt.UTC)
    except ValueError as exc:
        raise BadRequest("month must be YYYY-MM", code="INVALID_MONTH") from exc
    end = dt.datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=dt.UTC)
    return start, end


def _usd(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def _ascii(text: str) -> str:
    """The PDF's core font is Latin-1: anything else becomes '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")


@dataclass(frozen=True, slots=True)
class HoldingLine:
    symbol: str
    name: str
    quantity: str
    cost: int
    value: int


@dataclass(slots=True)
class StatementData:
    month: str
    user_id: uuid.UUID
    opening: int | None
    closing: int
    cash: int
    points_value: int
    net_deposits_in_month: int
    holdings: list[HoldingLine]
    realized: int
    fees: int
    entries: list[Transaction]
    chart_points: list[hist.Sample]
    generated_at: dt.datetime


async def collect(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    month: str,
    settings: Settings,
    now: dt.datetime,
) -> StatementData:
    start, end = month_range(month)
    points = await repo.points_between(session, user_id, ["eod"], start, end + dt.timedelta(0, 1))
    opening_row = next((p for p in points if p[0] <= start), None)
    closing_row = next((p for p in reversed(points) if p[0] <= end), None)
    live = (
        await snapshots.value_users(
            session=session, user_ids=[user_id], at=min(now, end), settings=settings, broker=None
        )
    )[0]
    closing = closing_row[1] if closing_row and closing_row[0] == end else live.equity
    flows = await ledger.external_flows(session=session, user_id=user_id, start=start, end=end)
    holdings: list[HoldingLine] = []
    realized = fees = 0
    for v in await gather(session=session, user_id=user_id, now=now, broker=None):
        events = [e for e in v.inst.events if e.at < end]
        book = replay(events)
        fees += sum(e.fee for e in events if e.at >= start)
        realized += sum(c.gain for c in book.closed if c.sold >= start)
        if book.open:
            qty = book.quantity
            holdings.append(
                HoldingLine(
                    v.inst.symbol,
                    v.inst.name,
                    f"{qty.normalize():f}",
                    book.cost,
                    int(qty * v.mark),
                )
            )
    entries = await ledger.statement(session=session, user_id=user_id, start=start, end=end)
    chart_points = [hist.Sample(at, e, d) for at, e, d in points]
    if not chart_points or chart_points[-1].at < min(now, end):
        chart_points.append(hist.Sample(min(now, end), closing, live.net_deposits))
    return StatementData(
        month=month,
        user_id=user_id,
        opening=opening_row[1] if opening_row and opening_row[0] == start else None,
        closing=closing,
        cash=live.cash,
        points_value=live.points,
        net_deposits_in_month=sum(f.amount for f in flows),
        holdings=holdings,
        realized=realized,
        fees=fees,
        entries=entries,
        chart_points=chart_points,
        generated_at=now,
    )


def render_csv(data: StatementData) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for t in data.entries:
        w.writerow(
            [
                t.created_at.isoformat(),
                t.entry_id,
                t.transfer_id,
                t.kind,
                t.account,
                t.currency,
                t.amount,
                t.balance_after,
                t.status,
                t.reference or "",
            ]
        )
    return buf.getvalue().encode()


def _chart(data: StatementData) -> bytes:
    s = hist.series(data.chart_points)
    return chart.equity_png(
        chart.ChartData(
            s.timestamp, s.equity, f"Equity, {data.month}", (s.profit_loss_pct or [0])[-1] >= 0
        ),
        width=720,
        height=240,
    )


def _table(pdf: FPDF, widths: list[int], header: list[str], rows: list[list[str]]) -> None:
    pdf.set_font("helvetica", "B", 9)
    for w, h in zip(widths, header, strict=True):
        pdf.cell(w, 6, _ascii(h), border="B")
    pdf.ln()
    pdf.set_font("helvetica", "", 9)
    for row in rows:
        for i, (w, c) in enumerate(zip(widths, row, strict=True)):
            pdf.cell(w, 5, _ascii(c)[:60], align="R" if i >= len(row) - 2 else "L")
        pdf.ln()
    pdf.ln(3)


def render_pdf(data: StatementData) -> bytes:
    pdf = FPDF(format="Letter")
    pdf.set_title(f"PULL statement {data.month}")
    pdf.set_author("PULL")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 10, f"PULL monthly statement - {data.month}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 9)
    pdf.cell(0, 5, f"Account {data.user_id}", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(
        0,
        5,
        f"Generated {data.generated_at:%Y-%m-%d %H:%M} UTC; holdings valued at the marks of that "
        "time (docs/portfolio.md).",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(3)
    pdf.set_font("helvetica", "B", 12)
    pdf.cell(0, 7, "Balances", new_x="LMARGIN", new_y="NEXT")
    summary = [
        ["Opening value", "" if data.opening is None else _usd(data.opening)],
        ["Closing value", _usd(data.closing)],
        ["Cash", _usd(data.cash)],
        ["Reward points (cash value)", _usd(data.points_value)],
        ["Net deposits this month", _usd(data.net_deposits_in_month)],
        ["Realized gain this month", _usd(data.realized)],
        ["Trading fees this month", _usd(data.fees)],
    ]
    _table(pdf, [120, 60], ["Item", "Amount"], summary)
    pdf.image(io.BytesIO(_chart(data)), w=180)
    pdf.ln(2)
    pdf.set_font("helvetica", "B", 12)
    pdf.cell(0, 7, "Holdings at month end", new_x="LMARGIN", new_y="NEXT")
    _table(
        pdf,
        [50, 60, 24, 24, 24],
        ["Symbol", "Name", "Quantity", "Cost", "Value"],
        [[h.symbol, h.name[:30], h.quantity, _usd(h.cost), _usd(h.value)] for h in data.holdings]
        or [["(none)", "", "", "", ""]],
    )
    pdf.set_font("helvetica", "B", 12)
    pdf.cell(0, 7, f"Activity ({len(data.entries)} entries)", new_x="LMARGIN", new_y="NEXT")
    _table(
        pdf,
        [34, 46, 30, 16, 28, 28],
        ["Date", "Kind", "Account", "Cur.", "Amount", "Balance"],
        [
            [
                f"{t.created_at:%Y-%m-%d %H:%M}",
                t.kind,
                t.account,
                t.currency,
                _usd(t.amount) if t.currency == "USD" else str(t.amount),
                _usd(t.balance_after) if t.currency == "USD" else str(t.balance_after),
            ]
            for t in data.entries
        ]
        or [["(none)", "", "", "", "", ""]],
    )
    return bytes(pdf.output())


async def generate(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    month: str,
    settings: Settings,
    now: dt.datetime,
) -> bool:
    """Build and store the user's statement for `month` unless it exists (True if written)."""
    data = await collect(session=session, user_id=user_id, month=month, settings=settings, now=now)
    return await repo.insert_statement(session, user_id, month, render_pdf(data), render_csv(data))


@dataclass(frozen=True, slots=True)
class StatementBatch:
    written: int
    users: int
    last_user: uuid.UUID | None


async def statement_batch(
    *,
    session: AsyncSession,
    month: str,
    after: uuid.UUID | None,
    limit: int,
    settings: Settings,
    now: dt.datetime,
) -> StatementBatch:
    """Statements for the next `limit` customers after `after` (skipping those that have one)."""
    month_range(month)
    users = await ledger.account_owners_after(session=session, after=after, limit=limit)
    if not users:
        return StatementBatch(0, 0, None)
    done = await repo.users_with_statement(session, users, month)
    written = 0
    for u in users:
        if u not in done:
            written += await generate(
                session=session, user_id=u, month=month, settings=settings, now=now
            )
    return StatementBatch(written, len(users), users[-1])
