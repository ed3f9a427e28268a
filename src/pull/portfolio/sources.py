"""What a customer holds, gathered from each module's service (never its tables), as
instruments with their lot events and marks. Marks are in cents per unit (docs/portfolio.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from pull.brokerage import service as brokerage
from pull.exchange import holdings as exchange
from pull.ledger import service as ledger
from pull.portfolio.lots import LotEvent
from pull.rwa import service as rwa

# The ledger transfer of a buyout's payout: a sale of the holder's shares
DISTRIBUTION = "rwa_distribution"
# A buyout's distribution sorts after every trade at the same instant
_DISTRIBUTION_SEQ = 1 << 61


@dataclass(slots=True)
class Instrument:
    kind: str  # prediction | rwa | stock | crypto
    symbol: str
    name: str
    events: list[LotEvent] = field(default_factory=list)
    mark: Decimal | None = None
    mark_source: str = "cost"
    previous_close: Decimal | None = None


def binary_events(
    fills: Iterable[exchange.FillRow], settlements: Iterable[exchange.SettlementRow]
) -> dict[str, dict[str, list[LotEvent]]]:
    """Per ticker, YES and NO lot events from fills in YES-price space.

    A fill moves the YES-space position by +count (buy YES, sell NO) or -count (buy NO,
    sell YES) at the YES price p. Moving against held contracts closes them first (the
    exchange nets a YES against a NO: the pair pays 100), so a NO closed at YES price p brings
    100 - p and a YES closed brings p; the rest opens new contracts at p (YES) or 100 - p (NO).
    The fill's fee is split between the two parts by count. A settlement disposes of what was
    held at its payout (the winning side's revenue, the losing side's 0, a void's refund)."""
    out: dict[str, dict[str, list[LotEvent]]] = defaultdict(lambda: {"YES": [], "NO": []})
    pos: dict[str, int] = defaultdict(int)
    for f in fills:
        up = (f.side == "yes") == (f.action == "buy")
        p = f.yes_price
        held = pos[f.ticker]
        if up:
            closing = min(f.count, max(0, -held))
            close_side, open_side = "NO", "YES"
            close_px, open_px = 100 - p, p
        else:
            closing = min(f.count, max(0, held))
            close_side, open_side = "YES", "NO"
            close_px, open_px = p, 100 - p
        opening = f.count - closing
        close_fee = f.fee * closing // f.count if f.count else 0
        sides = out[f.ticker]
        if closing:
            sides[close_side].append(
                LotEvent(f.at, Decimal(-closing), closing * close_px, close_fee, f.id)
            )
        if opening:
            sides[open_side].append(
                LotEvent(f.at, Decimal(opening), opening * open_px, f.fee - close_fee, f.id)
            )
        pos[f.ticker] = held + (f.count if up else -f.count)
    for s in settlements:
        sides = out[s.ticker]
        total = s.yes_count + s.no_count
        for side, count in (("YES", s.yes_count), ("NO", s.no_count)):
            if not count:
                continue
            if s.result == "void":
                cash = (
                    s.revenue * count // total
                    if side == "YES"
                    else s.revenue - (s.revenue * s.yes_count // total)
                )
            else:
                cash = s.revenue if s.result == side.lower() else 0
            sides[side].append(LotEvent(s.at, Decimal(-count), cash, 0, 1 << 62))
    return out


async def prediction_events(
    session: AsyncSession, user_id: uuid.UUID
) -> dict[tuple[str, str], list[LotEvent]]:
    """Per (ticker, side): the user's lot events from the exchange's fills and settlements."""
    fills = await exchange.user_fills(session=session, user_id=user_id)
    settlements = await exchange.user_settlements(session=session, user_id=user_id)
    return {
        (ticker, side): events
        for ticker, sides in binary_events(fills, settlements).items()
        for side, events in sides.items()
        if events
    }


async def prediction_marks(
    session: AsyncSession, keys: Iterable[tuple[str, str]], day_start: dt.datetime
) -> dict[tuple[str, str], Instrument]:
    """Per (ticker, side): the instrument with its mark and previous close (no events), by
    ticker, YES before NO."""
    wanted = sorted(set(keys), key=lambda k: (k[0], k[1] != "YES"))
    marks = await exchange.marks(
        session=session, tickers=sorted({t for t, _ in wanted}), day_start=day_start
    )
    out = {}
    for ticker, side in wanted:
        m = marks.get(ticker)
        inst = Instrument("prediction", f"{ticker}:{side}", m.title if m else ticker)
        if m is not None:
            yes, source = m.yes_mark()
            if yes is not None:
                inst.mark = Decimal(yes if side == "YES" else 100 - yes)
                inst.mark_source = source
            prev = m.previous_close
            if prev is not None:
                inst.previous_close = Decimal(prev if side == "YES" else 100 - prev)
        out[(ticker, side)] = inst
    return out


async def predictions(
    session: AsyncSession, user_id: uuid.UUID, day_start: dt.datetime
) -> list[Instrument]:
    events = await prediction_events(session, user_id)
    found = await prediction_marks(session, events, day_start)
    for key, inst in found.items():
        inst.events = events[key]
    return list(found.values())


async def rwa_events(session: AsyncSession, user_id: uuid.UUID) -> dict[str, list[LotEvent]]:
    """Per share currency: subscriptions, secondary trades and buyout distributions."""
    events: dict[str, list[LotEvent]] = defaultdict(list)
    for e in await rwa.share_events(session=session, user_id=user_id):
        events[e.currency].append(LotEvent(e.at, Decimal(e.shares), e.cents, 0, e.seq))
    for currency, ev in (await buyout_sales(session, user_id)).items():
        events[currency].extend(ev)
    return dict(events)


async def rwa_marks(
    session: AsyncSession, currencies: Iterable[str], day_start: dt.datetime
) -> dict[str, Instrument]:
    wanted = sorted(set(currencies))
    marks = await rwa.share_marks(session=session, currencies=wanted, day_start=day_start)
    out = {}
    for currency in wanted:
        m = marks.get(currency)
        inst = Instrument("rwa", currency, m.title if m else currency)
        if m is not None:
            price, source = m.price()
            if price is not None:
                inst.mark, inst.mark_source = Decimal(price), source
            close = m.close_before_today()
            inst.previous_close = None if close is None else Decimal(close)
        out[currency] = inst
    return out


async def rwa_shares(
    session: AsyncSession, user_id: uuid.UUID, day_start: dt.datetime
) -> list[Instrument]:
    events = await rwa_events(session, user_id)
    found = await rwa_marks(session, events, day_start)
    for key, inst in found.items():
        inst.events = events[key]
    return list(found.values())


@dataclass(slots=True)
class _Distribution:
    at: dt.datetime
    currency: str = ""
    shares: int = 0
    cash: int = 0


async def buyout_sales(session: AsyncSession, user_id: uuid.UUID) -> dict[str, list[LotEvent]]:
    """A buyout's distribution as a sale of the holder's shares: the ledger transfer
    (`rwa_distribution`) takes the shares off the holder's share account and pays the cash
    into theirs; its shares and cash are the disposal's quantity and proceeds."""
    found: dict[int, _Distribution] = {}
    before: int | None = None
    while True:
        page = await ledger.transactions(
            session=session, user_id=user_id, before_id=before, limit=500, kind=DISTRIBUTION
        )
        for t in page:
            d = found.setdefault(t.transfer_id, _Distribution(t.created_at))
            if t.account == "shares":
                d.currency, d.shares = t.currency, d.shares - t.amount
            elif t.currency == "USD":
                d.cash += t.amount
        if len(page) < 500:
            break
        before = page[-1].entry_id
    out: dict[str, list[LotEvent]] = defaultdict(list)
    for transfer_id, d in sorted(found.items()):
        if d.shares > 0:
            seq = _DISTRIBUTION_SEQ + transfer_id
            out[d.currency].append(LotEvent(d.at, Decimal(-d.shares), d.cash, 0, seq))
    return out


async def stock_events(session: AsyncSession, user_id: uuid.UUID) -> dict[str, list[LotEvent]]:
    """Per symbol: the brokerage's applied executions (as corrected)."""
    events: dict[str, list[LotEvent]] = defaultdict(list)
    for e in await brokerage.executions(session=session, user_id=user_id):
        q = e.qty if e.side == "buy" else -e.qty
        events[e.symbol].append(LotEvent(e.at, q, e.cents, 0, e.seq))
    return dict(events)


async def stock_marks(
    session: AsyncSession,
    user_id: uuid.UUID,
    symbols: Iterable[str],
    day_start: dt.datetime,
    broker: brokerage.Broker | None,
) -> dict[str, Instrument]:
    wanted = sorted(set(symbols))
    if not wanted:
        return {}
    classes = {
        p.symbol: p.asset_class
        for p in await brokerage.open_positions(session=session, user_ids=[user_id])
    }
    marks = await brokerage.marks(
        session=session, broker=broker, symbols=wanted, day_start=day_start
    )
    out = {}
    for symbol in wanted:
        kind = "crypto" if classes.get(symbol) == "crypto" or "/" in symbol else "stock"
        inst = Instrument(kind, symbol, symbol)
        m = marks.get(symbol)
        if m is not None and m.price is not None:
            inst.mark, inst.mark_source = m.price * 100, m.source
        if m is not None and m.previous_close is not None:
            inst.previous_close = m.previous_close * 100
        out[symbol] = inst
    return out


async def stocks(
    session: AsyncSession,
    user_id: uuid.UUID,
    day_start: dt.datetime,
    broker: brokerage.Broker | None,
) -> list[Instrument]:
    events = await stock_events(session, user_id)
    found = await stock_marks(session, user_id, events, day_start, broker)
    for key, inst in found.items():
        inst.events = events[key]
    return list(found.values())
