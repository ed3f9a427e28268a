"""Demo exchange for `pull dev`: series, events, open markets and two market makers whose
resting orders make a living book. Idempotent: tickers, funding keys and client_order_ids are
fixed, so a second run changes nothing."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.exchange import service
from pull.exchange.errors import EventNotFound, MarketNotFound, SeriesNotFound
from pull.exchange.schemas import EventCreate, MarketCreate, OrderCreate, SeriesCreate
from pull.identity import service as identity
from pull.kyc import service as kyc
from pull.ledger import service as ledger

MAKERS = (
    ("mm1@pull.dev", "PullMaker1-2024", "Market Maker One"),
    ("mm2@pull.dev", "PullMaker2-2024", "Market Maker Two"),
)
MAKER_CASH = 10_000_000  # $100,000 each

# series ticker, title, category, [(event ticker, title, [(market ticker, title, fair YES)])]
DEMO = (
    (
        "KXBTC",
        "Bitcoin price",
        "Crypto",
        [
            (
                "KXBTC-26DEC31",
                "Bitcoin price at the end of 2026",
                [
                    ("KXBTC-26DEC31-T100000", "Bitcoin above $100,000 on Dec 31, 2026?", 62),
                    ("KXBTC-26DEC31-T150000", "Bitcoin above $150,000 on Dec 31, 2026?", 21),
                ],
            )
        ],
    ),
    (
        "KXFED",
        "Fed funds rate",
        "Economics",
        [
            (
                "KXFED-27JAN",
                "Fed decision in January 2027",
                [("KXFED-27JAN-CUT", "Will the Fed cut rates in January 2027?", 38)],
            )
        ],
    ),
    (
        "KXWEATHER",
        "Weather records",
        "Climate",
        [
            (
                "KXWEATHER-27",
                "Hottest year on record",
                [("KXWEATHER-27-HOTTEST", "Will 2027 be the hottest year on record?", 55)],
            )
        ],
    ),
)


async def _maker(
    session: AsyncSession, settings: Settings, email: str, pw: str, name: str
) -> uuid.UUID:
    existing = await identity.get_user_by_email(session=session, email=email)
    if existing is not None:
        user_id = existing.id
    else:
        env = identity.IdentityEnv.from_settings(settings)
        user = await identity.create_user(
            session=session, env=env, email=email, password=pw, display_name=name
        )
        await identity.mark_email_verified(session=session, user_id=user.id)
        user_id = user.id
    await kyc.set_tier(
        session=session, user_id=user_id, tier="accredited", actor_id=None, note="demo maker"
    )
    await ledger.transfer(
        session=session,
        idempotency_key=f"seed:exchange:{email}:cash",
        kind="seed.deposit",
        legs=[
            ledger.Leg(ledger.system_account("bank_clearing"), -MAKER_CASH),
            ledger.Leg(ledger.user_account(user_id, "cash"), MAKER_CASH),
        ],
        reference="demo market maker",
    )
    return user_id


async def seed_exchange(session: AsyncSession, settings: Settings) -> None:
    now = dt.datetime.now(dt.UTC)
    yes_maker = await _maker(session, settings, *MAKERS[0])
    no_maker = await _maker(session, settings, *MAKERS[1])
    for series_ticker, series_title, category, events in DEMO:
        try:
            await service.get_series(session=session, ticker=series_ticker)
        except SeriesNotFound:
            await service.create_series(
                session=session,
                data=SeriesCreate(ticker=series_ticker, title=series_title, category=category),
            )
        for event_ticker, event_title, markets in events:
            try:
                await service.get_event(session=session, ticker=event_ticker)
            except EventNotFound:
                await service.create_event(
                    session=session,
                    data=EventCreate(
                        ticker=event_ticker, series_ticker=series_ticker, title=event_title
                    ),
                )
            for ticker, title, fair in markets:
                try:
                    market = await service.get_market(session=session, ticker=ticker)
                except MarketNotFound:
                    market = await service.create_market(
                        session=session,
                        data=MarketCreate(
                            ticker=ticker,
                            event_ticker=event_ticker,
                            title=title,
                            rules_primary=f"Resolves YES if: {title}",
                            settlement_source="Demo data",
                            open_time=now - dt.timedelta(hours=1),
                            close_time=now + dt.timedelta(days=180),
                        ),
                    )
                if market.status == "initialized":
                    market = await service.set_market_status(
                        session=session, ticker=ticker, action="open"
                    )
                if market.status != "open":
                    continue
                for level in range(5):
                    size = 50 + 25 * level
                    await service.create_order(
                        session=session,
                        user_id=yes_maker,
                        data=OrderCreate(
                            ticker=ticker,
                            side="yes",
                            action="buy",
                            count=size,
                            yes_price=max(1, fair - 1 - level),
                            client_order_id=f"seed-{ticker}-yes-{level}",
                        ),
                    )
                    await service.create_order(
                        session=session,
                        user_id=no_maker,
                        data=OrderCreate(
                            ticker=ticker,
                            side="no",
                            action="buy",
                            count=size,
                            no_price=max(1, 100 - fair - 1 - level),
                            client_order_id=f"seed-{ticker}-no-{level}",
                        ),
                    )
