"""The earning consumer, batched: many outbox events in one transaction.

`consume_batch` applies a batch with a constant number of statements (claim the event ids,
the rules, the profiles, the cap counters, the tier window's sums, every earning's ledger
transfer in one round trip, the lots, the outbox rows), instead of about twenty round trips
and a commit per event. Each event is still applied at most once: its id is claimed in
`rewards_events` in the same transaction as its points, so a batch that fails rolls back
whole and the relay retries it (`consume` then applies the events one by one, each in its own
transaction, so one bad event never holds back the others).

The result is exactly the one `earning.consume_event` gives event by event, whatever the
batching: the batch is applied in event order, and an event's tier multiplier is the tier as
of that event (the profile's tier at the batch's start, raised inside the batch as soon as
the qualifying points earned by the events before it reach the next threshold, from the
ledger's 365-day sum read once at the start). Reversals and events that advance a referral
(which earn points outside the rules) end a run of events, so they apply after the earnings
before them and before those after them, as event by event.

Locks, in this order (everywhere the same): profiles (by user id), cap counters (by user id,
rule key), ledger accounts (transfers sorted by user id; each locks in account id order).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.identity import service as identity
from pull.kit.db import session_scope, utcnow
from pull.kit.outbox import OutboxEvent
from pull.ledger import service as ledger
from pull.rewards import earning, points, referrals, tiers
from pull.rewards import repository as repo
from pull.rewards import repository_batch as batch_repo
from pull.rewards.models import RewardRule

log = logging.getLogger("pull.rewards.consumer")

REFERRAL_TOPICS = ("kyc.approved", "funding.deposit_settled")


@dataclass(frozen=True, slots=True)
class EventIn:
    event_id: int
    topic: str
    payload: dict[str, Any]
    occurred_at: dt.datetime


@dataclass(slots=True)
class _Grant:
    event: EventIn
    person: earning.Participant
    rule: RewardRule
    points: int


def _grants(events: Sequence[EventIn], rules: Sequence[RewardRule]) -> list[_Grant]:
    out = []
    for e in events:
        matching = [r for r in rules if earning.applies(r, e.topic, e.occurred_at)]
        if not matching:
            continue
        for person in earning.participants(e.topic, e.payload):
            for rule in matching:
                base = earning.compute(rule.formula, person.measures)
                if base > 0:
                    out.append(_Grant(e, person, rule, base))
    return out


def _cap(usage: batch_repo.Usage, grant: _Grant) -> int:
    """What the rule's caps still allow of this grant; advances the counters (as
    `repository.consume_cap` does for one event)."""
    day = grant.event.occurred_at.date()
    day_points = usage.day_points if usage.day == day else 0
    allowed = grant.points
    if grant.rule.daily_cap is not None:
        allowed = min(allowed, max(0, grant.rule.daily_cap - day_points))
    if grant.rule.lifetime_cap is not None:
        allowed = min(allowed, max(0, grant.rule.lifetime_cap - usage.lifetime_points))
    if allowed > 0:
        usage.day = day
        usage.day_points = day_points + allowed
        usage.lifetime_points += allowed
        usage.changed = True
    return allowed


async def consume_batch(
    *,
    session: AsyncSession,
    events: Sequence[EventIn],
    settings: Settings,
    now: dt.datetime | None = None,
) -> dict[int, int]:
    """Apply outbox events (earnings by the rules, reversals, referral progress, tier
    upgrades); the points earned per newly applied event id (already applied ones are left
    out)."""
    now = now or utcnow()
    ordered = sorted({e.event_id: e for e in reversed(events)}.values(), key=lambda e: e.event_id)
    fresh = await batch_repo.claim_events(session, [(e.event_id, e.topic) for e in ordered])
    todo = [e for e in ordered if e.event_id in fresh]
    earned: dict[int, int] = {e.event_id: 0 for e in todo}
    referred = await _referred(session, todo)
    run: list[EventIn] = []
    for e in todo:
        ref = earning.reversal_of(e.topic, e.payload)
        if ref is not None:
            # A reversal applies after the earnings before it (which may be in this batch).
            await _apply(session, run, referred, settings=settings, now=now, earned=earned)
            run = []
            await earning.reverse(session=session, ref=ref, now=now)
            continue
        run.append(e)
        if _advances_referral(e, referred):
            # Its referral points count toward the tiers of the events after it.
            await _apply(session, run, referred, settings=settings, now=now, earned=earned)
            run = []
    await _apply(session, run, referred, settings=settings, now=now, earned=earned)
    await batch_repo.set_event_points(session, {k: v for k, v in earned.items() if v})
    return earned


async def _referred(session: AsyncSession, events: Sequence[EventIn]) -> set[uuid.UUID]:
    """The batch's referral-topic participants who signed up with a code (one read)."""
    people = sorted(
        {
            p.user_id
            for e in events
            if e.topic in REFERRAL_TOPICS
            for p in earning.participants(e.topic, e.payload)
        }
    )
    if not people:
        return set()
    return set(await identity.referrers_of(session=session, user_ids=people))


def _advances_referral(e: EventIn, referred: set[uuid.UUID]) -> bool:
    return e.topic in REFERRAL_TOPICS and any(
        p.user_id in referred for p in earning.participants(e.topic, e.payload)
    )


async def _apply(
    session: AsyncSession,
    events: list[EventIn],
    referred: set[uuid.UUID],
    *,
    settings: Settings,
    now: dt.datetime,
    earned: dict[int, int],
) -> None:
    """Earning events (no reversals among them), in id order; only the last may advance a
    referral."""
    if not events:
        return
    topics = sorted({e.topic for e in events})
    rules = await batch_repo.rules_for_topics(session, topics)
    grants = _grants(events, rules)
    voided = await repo.voided_markets(
        session, sorted({g.person.market for g in grants if g.person.market})
    )
    if voided:  # a trade relayed after its market's void earns nothing
        grants = [g for g in grants if g.person.market not in voided]
    ladder = tiers.tiers(settings)
    qualifying_users = sorted({g.person.user_id for g in grants if g.rule.qualifying})
    profiles = await batch_repo.lock_profiles(session, qualifying_users, ladder[0].name)
    usage = await batch_repo.lock_usage(
        session, [(g.person.user_id, g.rule.key) for g in grants], now.date()
    )
    window = await _window_sums(session, qualifying_users, now)
    level = {u: tiers.index_of(tier, ladder) for u, tier in profiles.items()}
    raised: dict[uuid.UUID, str] = {}
    lots: list[tuple[_Grant, int]] = []
    i = 0
    while i < len(grants):
        # One event's grants: its tier is the one as of the event.
        j = i
        while j < len(grants) and grants[j].event is grants[i].event:
            j += 1
        gained: dict[uuid.UUID, int] = {}
        for g in grants[i:j]:
            if g.rule.qualifying:
                g.points = g.points * ladder[level[g.person.user_id]].multiplier_bp // 10_000
            granted = _cap(usage[(g.person.user_id, g.rule.key)], g)
            if granted > 0:
                lots.append((g, granted))
                if g.rule.qualifying:
                    gained[g.person.user_id] = gained.get(g.person.user_id, 0) + granted
        for user_id, pts in gained.items():
            window[user_id] = window.get(user_id, 0) + pts
            reached = tiers.index_of(tiers.tier_for(max(0, window[user_id]), ladder).name, ladder)
            if reached > level[user_id]:
                level[user_id] = reached
                profiles[user_id] = raised[user_id] = ladder[reached].name
        i = j
    await batch_repo.write_usage(session, usage)
    await _earn(session, lots, settings=settings, now=now, earned=earned)
    rewarded = await _referrals(session, events, referred, settings=settings, now=now)
    raised.update(await _upgrade(session, sorted(rewarded), profiles, settings=settings, now=now))
    await batch_repo.set_tiers(session, raised)


async def _window_sums(
    session: AsyncSession, user_ids: list[uuid.UUID], now: dt.datetime
) -> dict[uuid.UUID, int]:
    """Qualifying points of the tier window per user, from the ledger (one read)."""
    if not user_ids:
        return {}
    return await ledger.entry_sums(
        session=session,
        account_kind="points",
        currency="PTS",
        transfer_kinds=points.QUALIFYING_KINDS,
        start=now - tiers.WINDOW,
        owner_ids=user_ids,
    )


async def _earn(
    session: AsyncSession,
    lots: list[tuple[_Grant, int]],
    *,
    settings: Settings,
    now: dt.datetime,
    earned: dict[int, int],
) -> None:
    """Every lot's ledger transfer (pool -> user) in one round trip, then the lots and their
    `rewards.earned` events; keys are those of `points.earn`, so either path replays the
    other's work as a no-op."""
    lots.sort(key=lambda x: (str(x[0].person.user_id), x[0].event.event_id, x[0].rule.id))
    specs = []
    for g, granted in lots:
        key = earning.earning_key(g.event.event_id, g.rule.id, g.person)
        specs.append(
            ledger.TransferSpec(
                idempotency_key=f"rewards:earn:{key}",
                kind=points.EARN_QUALIFYING if g.rule.qualifying else points.EARN_PROMOTIONAL,
                legs=[
                    ledger.Leg(points.POOL, -granted),
                    ledger.Leg(points.account(g.person.user_id), granted),
                ],
                reference=g.person.source_ref,
                metadata={
                    "source": g.event.topic,
                    "rule_id": g.rule.id,
                    "event_id": g.event.event_id,
                },
            )
        )
    transfer_ids = await ledger.transfer_many(session=session, transfers=specs)
    rows = []
    for (g, granted), transfer_id in zip(lots, transfer_ids, strict=True):
        days = g.rule.expiry_days or settings.rewards_points_expiry_days
        rows.append(
            batch_repo.NewLot(
                key=earning.earning_key(g.event.event_id, g.rule.id, g.person),
                user_id=g.person.user_id,
                points=granted,
                qualifying=g.rule.qualifying,
                source=g.event.topic,
                source_ref=g.person.source_ref,
                rule_id=g.rule.id,
                event_id=g.event.event_id,
                transfer_id=transfer_id,
                earned_at=now,
                expires_at=now + dt.timedelta(days=days),
                market=g.person.market,
            )
        )
    inserted = await batch_repo.insert_lots(session, rows, at=now.isoformat())
    for _lot_id, lot in inserted.values():  # new lots only (a replay inserts none)
        assert lot.event_id is not None
        earned[lot.event_id] = earned.get(lot.event_id, 0) + lot.points


async def _referrals(
    session: AsyncSession,
    events: Sequence[EventIn],
    referred: set[uuid.UUID],
    *,
    settings: Settings,
    now: dt.datetime,
) -> set[uuid.UUID]:
    """Referral progress for the referees among these events' participants."""
    rewarded: set[uuid.UUID] = set()
    for e in events:
        if e.topic not in REFERRAL_TOPICS:
            continue
        for p in earning.participants(e.topic, e.payload):
            if p.user_id in referred:
                rewarded |= await referrals.progress(
                    session=session,
                    referee_id=p.user_id,
                    topic=e.topic,
                    amount=p.measures.get("amount", 0),
                    settings=settings,
                    now=now,
                )
    return rewarded


async def _upgrade(
    session: AsyncSession,
    user_ids: list[uuid.UUID],
    profiles: dict[uuid.UUID, str],
    *,
    settings: Settings,
    now: dt.datetime,
) -> dict[uuid.UUID, str]:
    """The tiers referral sides' referral points reach (never lower): one ledger read, after
    the points; {user: new tier} of those raised."""
    if not user_ids:
        return {}
    ladder = tiers.tiers(settings)
    missing = [u for u in user_ids if u not in profiles]
    if missing:  # referral sides without an earning in this run
        profiles.update(await batch_repo.lock_profiles(session, missing, ladder[0].name))
    sums = await _window_sums(session, user_ids, now)
    out = {}
    for user_id in user_ids:
        reached = tiers.tier_for(max(0, sums.get(user_id, 0)), ladder)
        if tiers.index_of(reached.name, ladder) > tiers.index_of(profiles[user_id], ladder):
            profiles[user_id] = out[user_id] = reached.name
    return out


def event_in(event: OutboxEvent) -> EventIn:
    return EventIn(event.id, event.topic, event.payload, event.created_at)


async def consume(
    maker: async_sessionmaker[AsyncSession], events: Sequence[EventIn], settings: Settings
) -> dict[int, str]:
    """What the relay runs: the batch in one transaction; if that fails, each event in its
    own (the failures, by event id, stay undelivered and are retried)."""
    if not events:
        return {}
    try:
        async with session_scope(maker) as session:
            await consume_batch(session=session, events=events, settings=settings)
        return {}
    except Exception as exc:
        log.warning(
            "rewards batch failed; applying its events one by one",
            extra={"events": len(events), "error": type(exc).__name__},
        )
    failed: dict[int, str] = {}
    for e in events:
        try:
            async with session_scope(maker) as session:
                await consume_batch(session=session, events=[e], settings=settings)
        except Exception as exc:
            failed[e.event_id] = f"{type(exc).__name__}: {exc}"[:2000]
    return failed
