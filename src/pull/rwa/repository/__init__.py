"""All SQL of the RWA module, one module per reason: assets (and valuations), offerings (and
subscriptions), positions (cost bases), orders (the book and trades), buyouts (and votes),
holdings (the portfolio's reads)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


def add(session: AsyncSession, row: object) -> None:
    session.add(row)
