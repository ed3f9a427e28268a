"""Exchange test helpers: markets, funded KYC'd traders and the money invariants."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.exchange import service
from pull.exchange.errors import SeriesNotFound
from pull.exchange.schemas import EventCreate, MarketCreate, SeriesCreate
from pull.ledger import service as ledger

MarketFactory = Callable[..., Awaitable[str]]


async def create_market(
    maker: async_sessionmaker[AsyncSession],
    ticker: str | None = None,
    *,
    open_market: bool = True,
    taker_fee_bps: int = 700,
    maker_fee_bps: int = 0,
    close_in: dt.timedelta = dt.timedelta(days=30),
    open_time: dt.datetime | None = None,
) -> str:
    ticker = ticker or f"T{uuid.uuid4().hex[:10].upper()}"
    now = dt.datetime.now(dt.UTC)
    async with maker() as s, s.begin():
        series = f"S{ticker}"[:64]
        event = f"E{ticker}"[:64]
        try:
            await service.get_series(session=s, ticker=series)
        except SeriesNotFound:
            await service.create_series(
                session=s, data=SeriesCreate(ticker=series, title="Series", category="Test")
            )
            await service.create_event(
                session=s, data=EventCreate(ticker=event, series_ticker=series, title="Event")
            )
        await service.create_market(
            session=s,
            data=MarketCreate(
                ticker=ticker,
                event_ticker=event,
                title=f"Will {ticker} happen?",
                open_time=open_time or now - dt.timedelta(minutes=1),
                close_time=now + close_in,
                taker_fee_bps=taker_fee_bps,
                maker_fee_bps=maker_fee_bps,
            ),
        )
        if open_market:
            await service.set_market_status(session=s, ticker=ticker, action="open")
    return ticker


async def fund(maker: async_sessionmaker[AsyncSession], user_id: uuid.UUID, cents: int) -> None:
    """Cash as if deposited: a shortcut past funding for exchange tests (a deposit through the
    API, to settlement, is in tests/funding and tests/test_journey.py)."""
    async with maker() as s, s.begin():
        await ledger.transfer(
            session=s,
            idempotency_key=f"test-fund:{user_id}:{uuid.uuid4().hex}",
            kind="test.deposit",
            legs=[
                ledger.Leg(ledger.system_account("bank_clearing"), -cents),
                ledger.Leg(ledger.user_account(user_id, "cash"), cents),
            ],
        )


@pytest.fixture
def market_factory(sessionmaker: async_sessionmaker[AsyncSession]) -> MarketFactory:
    async def make(ticker: str | None = None, **kw: Any) -> str:
        return await create_market(sessionmaker, ticker, **kw)

    return make


@pytest.fixture
def trader(
    user_factory: Any, kyc_tier: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> Callable[..., Awaitable[Any]]:
    """`await trader(cents=100_000, tier="standard")`: a user with cash and a KYC tier."""

    async def make(cents: int = 100_000, tier: str = "standard") -> Any:
        user = await user_factory()
        if tier != "none":
            await kyc_tier(user.id, tier)
        if cents:
            await fund(sessionmaker, user.id, cents)
        return user

    return make


async def cash(s: AsyncSession, user_id: uuid.UUID) -> int:
    return await ledger.account_balance(session=s, account=ledger.user_account(user_id, "cash"))


async def held(s: AsyncSession, user_id: uuid.UUID) -> int:
    return await ledger.account_balance(session=s, account=ledger.user_account(user_id, "held"))


async def check_invariants(s: AsyncSession, tickers: list[str]) -> None:
    """The exchange's money invariants (DESIGN.md), checked straight against the database."""
    for ticker in tickers:
        row = (
            await s.execute(
                text(
                    "SELECT m.id, m.open_interest, m.yes_bid, m.yes_ask, "
                    "(SELECT max(yes_price) FROM exchange_orders WHERE market_id = m.id "
                    " AND status = 'resting' AND is_bid), "
                    "(SELECT min(yes_price) FROM exchange_orders WHERE market_id = m.id "
                    " AND status = 'resting' AND NOT is_bid), "
                    "(SELECT coalesce(sum(position), 0) FROM exchange_positions "
                    " WHERE market_id = m.id AND position > 0), "
                    "(SELECT coalesce(sum(-position), 0) FROM exchange_positions "
                    " WHERE market_id = m.id AND position < 0) "
                    "FROM exchange_markets m WHERE m.ticker = :t"
                ),
                {"t": ticker},
            )
        ).one()
        mid, oi, yes_bid, yes_ask, bid, ask, yes, no = row
        assert bid is None or ask is None or bid < ask, f"crossed book {bid} >= {ask}"
        assert (yes_bid, yes_ask) == (bid, ask), "cached top of book is stale"
        assert yes == no, f"YES open interest {yes} != NO {no}"
        assert oi == yes, f"market open_interest {oi} != {yes}"
        escrow = await ledger.account_balance(session=s, account=service.escrow_account(ticker))
        assert escrow == 100 * yes, f"escrow {escrow} != 100 x {yes}"
        bad = (
            await s.execute(
                text(
                    "SELECT p.user_id, p.sell_reserved, p.position, coalesce(("
                    " SELECT sum(remaining_count) FROM exchange_orders o WHERE o.user_id = "
                    " p.user_id AND o.market_id = p.market_id AND o.status = 'resting' "
                    " AND o.action = 'sell'), 0) AS sells "
                    "FROM exchange_positions p WHERE p.market_id = :m"
                ),
                {"m": mid},
            )
        ).all()
        for user_id, reserved, position, sells in bad:
            assert reserved == sells, f"{user_id}: sell_reserved {reserved} != {sells}"
            assert sells <= abs(position), f"{user_id}: offers {sells} > holds {position}"
    holds = (
        await s.execute(
            text(
                "SELECT a.owner_id, a.balance, coalesce(("
                " SELECT sum(hold_remaining) FROM exchange_orders o"
                " WHERE o.user_id = a.owner_id AND o.status = 'resting'), 0) "
                "FROM ledger_accounts a WHERE a.kind = 'held' AND a.owner_id IS NOT NULL"
            )
        )
    ).all()
    for owner, balance, expected in holds:
        assert balance == expected, f"{owner}: held {balance} != resting collateral {expected}"
    negative = await s.scalar(
        text(
            "SELECT count(*) FROM ledger_accounts WHERE owner_id IS NOT NULL "
            "AND balance - pending_debits < 0"
        )
    )
    assert negative == 0
    trial = await ledger.trial_balance(session=s)
    assert trial.balanced, trial
