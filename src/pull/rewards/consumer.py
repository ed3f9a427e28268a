"""The earning consumer, batched: many outbox events in one transaction.

`consume_batch` applies a batch with a constant number of statements (claim the event ids,
the rules, the profiles, the cap counters, every earning's ledger transfer in one round trip,
the lots, the outbox rows, the tier sums), instead of about twenty round trips and a commit per
event. Each event is still applied at most once: its id is claimed in `rewards_events` in the
same transaction as its points, so a batch that fails rolls back whole and the relay retries
it (`consume` then applies the events one by one, each in its own transaction, so one bad
event never holds back the others). The result is the one `earning.consume_event` gives
event by event, with one difference: a tier reached inside a batch takes effect for earnings
of the next batch (at most one relay batch later), not for the rest of this one.

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
from pull.kit.outbox import OutboxEvent, emit
from pull.ledger import service as ledger
from pull.rewards import earning, points, referrals, tiers
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
    run: list[EventIn] = []
    for e in todo:
        kind = earning.REVERSING_TOPICS.get(e.topic)
        if kind is None:
            run.append(e)
            continue
        # A reversal applies after the earnings before it (which may be in this batch).
        await _apply(session, run, settings=settings, now=now, earned=earned)
        run = []
        ref = f"{kind}:{e.payload.get(kind + '_id')}"
        await points.reverse_source(session=session, source_ref=ref, now=now)
    await _apply(session, run, settings=settings, now=now, earned=earned)
    await batch_repo.set_event_points(session, {k: v for k, v in earned.items() if v})
    return earned


async def _apply(
    session: AsyncSession,
    events: list[EventIn],
    *,
    settings: Settings,
    now: dt.datetime,
    earned: dict[int, int],
) -> None:
    """Earning events (no reversals among them), in id order."""
    if not events:
        return
    topics = sorted({e.topic for e in events})
    rules = await batch_repo.rules_for_topics(session, topics)
    grants = _grants(events, rules)
    ladder = tiers.tiers(settings)
    qualifying_users = sorted({g.person.user_id for g in grants if g.rule.qualifying})
    profiles = await batch_repo.lock_profiles(session, qualifying_users, ladder[0].name)
    for g in grants:
        if g.rule.qualifying:
            row = profiles.get(g.person.user_id)
            bp = ladder[tiers.index_of(row.tier, ladder)].multiplier_bp if row else 10_000
            g.points = g.points * bp // 10_000
    usage = await batch_repo.lock_usage(
        session, [(g.person.user_id, g.rule.key) for g in grants], now.date()
    )
    lots: list[tuple[_Grant, int]] = []
    for g in grants:
        granted = _cap(usage[(g.person.user_id, g.rule.key)], g)
        if granted > 0:
            lots.append((g, granted))
    await batch_repo.write_usage(session, usage)
    await _earn(session, lots, settings=settings, now=now, earned=earned)
    upgrades = {g.person.user_id for g, _ in lots if g.rule.qualifying}
    upgrades |= await _referrals(session, events, settings=settings, now=now)
    await _upgrade(session, sorted(upgrades), profiles, settings=settings, now=now)


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
            )
        )
    inserted = await batch_repo.insert_lots(session, rows)
    for lot in rows:
        lot_id = inserted.get(lot.key)
        if lot_id is None:  # made before by the single-event path: a replay
            continue
        assert lot.event_id is not None
        earned[lot.event_id] = earned.get(lot.event_id, 0) + lot.points
        emit(
            session,
            topic="rewards.earned",
            key=str(lot.user_id),
            payload={
                "user_id": str(lot.user_id),
                "lot_id": lot_id,
                "points": lot.points,
                "qualifying": lot.qualifying,
                "source": lot.source,
                "at": now.isoformat(),
            },
        )


async def _referrals(
    session: AsyncSession, events: Sequence[EventIn], *, settings: Settings, now: dt.datetime
) -> set[uuid.UUID]:
    """Referral progress for referees in the batch (one read finds who has a referrer)."""
    people = [
        (e, p)
        for e in events
        if e.topic in REFERRAL_TOPICS
        for p in earning.participants(e.topic, e.payload)
    ]
    if not people:
        return set()
    referred = await identity.referrers_of(
        session=session, user_ids=sorted({p.user_id for _, p in people})
    )
    rewarded: set[uuid.UUID] = set()
    for e, p in people:
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
    profiles: dict[uuid.UUID, Any],
    *,
    settings: Settings,
    now: dt.datetime,
) -> None:
    """Raise tiers the new points reach (never lowers): one ledger read for all users."""
    if not user_ids:
        return
    ladder = tiers.tiers(settings)
    missing = [u for u in user_ids if u not in profiles]
    if missing:  # referral sides without an earning in this batch
        profiles.update(await batch_repo.lock_profiles(session, missing, ladder[0].name))
    sums = await ledger.entry_sums(
        session=session,
        account_kind="points",
        currency="PTS",
        transfer_kinds=points.QUALIFYING_KINDS,
        start=now - tiers.WINDOW,
        owner_ids=user_ids,
    )
    for user_id in user_ids:
        row = profiles[user_id]
        reached = tiers.tier_for(max(0, sums.get(user_id, 0)), ladder)
        if tiers.index_of(reached.name, ladder) > tiers.index_of(row.tier, ladder):
            row.tier = reached.name
    await session.flush()


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
