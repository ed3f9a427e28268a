"""Operator commands behind `pull ledger ...` (the CLI stays a thin typer layer). They read
DATABASE_URL, or the database of a running `pull dev` (as `pull users` does)."""

from __future__ import annotations

from pull.config import Settings
from pull.identity.commands import cli_database_url
from pull.kit.db import make_engine, make_sessionmaker, session_scope
from pull.ledger import service
from pull.ledger.schemas import LedgerInvariantsRead


async def check(settings: Settings) -> LedgerInvariantsRead:
    engine = make_engine(cli_database_url(settings), pool_size=1, max_overflow=0)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            return await service.invariant_report(session=session)
    finally:
        await engine.dispose()


def render(report: LedgerInvariantsRead) -> list[str]:
    """The report as lines of text: one per class, then one per negative account."""
    lines = []
    for c in report.classes:
        rule = "never negative" if c.never_negative else "may go negative"
        flag = "VIOLATED" if c.never_negative and c.negative_count else "ok"
        lines.append(
            f"{c.account_class:<28} {rule:<16} accounts={c.accounts:<8} "
            f"negative={c.negative_count:<6} {flag}"
        )
        for a in c.negative:
            lines.append(f"    {a.account}  balance={a.balance}  available={a.available}")
    lines.append("ledger invariants: " + ("ok" if report.ok else "VIOLATED"))
    return lines
