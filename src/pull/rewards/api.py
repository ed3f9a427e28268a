"""Rewards routes for users: balance, history, catalog, redemption, leaderboard, streak,
referrals. Admin routes are in `admin_api`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi.responses import JSONResponse, Response

from pull.identity.deps import ActiveUser, CurrentUser
from pull.kit.db import SessionDep, commit, session_scope, utcnow
from pull.kit.errors import BadRequest
from pull.kit.idempotency import IdempotencyKeyHeader, run_idempotent
from pull.kit.pagination import clamp_limit, decode_cursor, encode_cursor
from pull.kit.ratelimit import general, payment_routes
from pull.rewards import (
    leaderboard,
    read_cache,
    redemption,
    referrals,
    service,
    sold_out,
    streaks,
    tiers,
)
from pull.rewards.admin_api import router as admin_router
from pull.rewards.errors import OutOfStock
from pull.rewards.schemas import (
    BalanceRead,
    HistoryItem,
    HistoryPage,
    ItemList,
    ItemRead,
    LeaderboardEntry,
    LeaderboardRead,
    Period,
    RedeemRequest,
    RedemptionPage,
    RedemptionRead,
    RefereeRead,
    ReferralsRead,
    SettingsRead,
    SettingsWrite,
    StreakRead,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    429: {"description": "Rate limited"},
}

router = APIRouter(prefix="/api/v1/rewards", tags=["rewards"], responses=_ERRORS)
relaxed = [Depends(general)]


def routers() -> list[APIRouter]:
    return [router, admin_router]


def _gate(request: Request) -> asyncio.Semaphore:
    """At most REWARDS_REDEEM_CONCURRENCY redemptions at once per process (one per app)."""
    gate: asyncio.Semaphore | None = getattr(request.app.state, "rewards_redeem_gate", None)
    if gate is None:
        gate = asyncio.Semaphore(request.app.state.settings.rewards_redeem_concurrency)
        request.app.state.rewards_redeem_gate = gate
    return gate


DeviceHeader = Annotated[
    str | None,
    Header(
        alias="X-Device-Fingerprint",
        max_length=128,
        description="The app's device fingerprint (used to refuse self-referrals)",
    ),
]


async def _device(session: Any, request: Request, user_id: uuid.UUID, device: str | None) -> None:
    if device:
        await streaks.record_device(
            session=session,
            user_id=user_id,
            fingerprint=device,
            settings=request.app.state.settings,
        )


def _json(body: bytes) -> Response:
    """An answer serialized once (and cached so): no response-model pass per request."""
    return Response(content=body, media_type="application/json")


@router.get("/balance", response_model=BalanceRead, dependencies=relaxed, summary="Points")
async def balance(user: CurrentUser, request: Request, device: DeviceHeader = None) -> Response:
    # No SessionDep: an answer from memory opens no session (its construction, the request's
    # exit stack and the close were most of what /balance cost beyond /leaderboard); a miss
    # or a device write opens one here, committed before the answer.
    settings = request.app.state.settings

    async def load() -> tuple[bytes, float | None]:
        async with session_scope(request.app.state.sessionmaker) as session:
            found = await service.balance(
                session=session, user_id=user.id, settings=settings, now=utcnow()
            )
        first = found.expiring[0].expires_at.timestamp() if found.expiring else None
        return found.model_dump_json().encode(), first

    if device:  # this request writes (the device): answered from the database
        async with session_scope(request.app.state.sessionmaker) as session:
            await _device(session, request, user.id, device)
        return _json((await load())[0])
    # from memory while no commit changed the user's points (pull.rewards.read_cache)
    return _json(await read_cache.balance(request.app.state.redis, user.id, load))


@router.get(
    "/history",
    response_model=HistoryPage,
    dependencies=relaxed,
    summary="Point movements, newest first (cursor-paginated)",
    responses={400: {"description": "INVALID_CURSOR or INVALID_LIMIT"}},
)
async def history(
    user: CurrentUser,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int | None, Query()] = None,
) -> HistoryPage:
    size = clamp_limit(limit)
    value = decode_cursor(cursor)
    before: int | None = None
    if value is not None:
        raw = value.get("id")
        if type(raw) is not int or raw < 0 or raw > 2**62:
            raise BadRequest("Invalid cursor", code="INVALID_CURSOR")
        before = raw
    rows = await service.history(session=session, user_id=user.id, before_id=before, limit=size + 1)
    items = [
        HistoryItem(
            id=r.entry_id,
            transfer_id=r.transfer_id,
            kind=r.kind,
            points=r.amount,
            balance_after=r.balance_after,
            status=r.status,
            reference=r.reference,
            created_at=r.created_at,
        )
        for r in rows[:size]
    ]
    nxt = encode_cursor({"id": rows[size - 1].entry_id}) if len(rows) > size else None
    return HistoryPage(items=items, cursor=nxt)


@router.get("/catalog", response_model=ItemList, dependencies=relaxed, summary="Rewards on offer")
async def catalog(user: CurrentUser, session: SessionDep) -> ItemList:
    rows = await redemption.catalog(session=session, now=utcnow())
    return ItemList(items=[ItemRead.model_validate(r) for r in rows])


@router.post(
    "/redeem",
    response_model=RedemptionRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(payment_routes)],
    summary="Redeem points for a reward (Idempotency-Key required)",
    responses={
        400: {"description": "INSUFFICIENT_POINTS or IDEMPOTENCY_KEY_REQUIRED"},
        404: {"description": "REWARD_NOT_FOUND"},
        409: {"description": "OUT_OF_STOCK, REWARD_INACTIVE or IDEMPOTENCY_KEY_REUSED"},
        422: {"description": "INVALID_REDEMPTION"},
    },
)
async def redeem(
    body: RedeemRequest,
    user: ActiveUser,
    key: IdempotencyKeyHeader,
    request: Request,
) -> JSONResponse:
    gone = sold_out.of(request.app.state)
    # An item this process saw sold out under the stock generation read here is refused before
    # any database work or wait (a burst of 1,000 buyers for 100 units: 900 cheap 409s); the
    # conditional UPDATE of `reserve` is what guarantees it is never oversold (see sold_out).
    gen = await sold_out.generation(request.app.state.redis, body.reward_id)
    gone.check(body.reward_id, gen)
    prepared: list[redemption.Prepared] = []
    holds: list[uuid.UUID] = []
    maker = request.app.state.sessionmaker

    async def take(item_id: uuid.UUID, quantity: int) -> uuid.UUID | None:
        # The units in a transaction of their own: the item's row lock never waits on us.
        async with session_scope(maker) as own:
            hold = await redemption.take_stock(
                session=own, item_id=item_id, quantity=quantity, now=utcnow()
            )
        if hold is not None:
            holds.append(hold)
        return hold

    # Waiting here holds no database connection; no SessionDep either: a refused buyer
    # (sold out) builds no session at all, the rest open theirs after the wait.
    async with _gate(request):
        # Marked while this request waited its turn: refused without touching the database.
        gone.check(body.reward_id, gen)
        async with maker() as session:

            async def handler() -> RedemptionRead:
                found = await redemption.prepare(
                    session=session,
                    user_id=user.id,
                    data=body,
                    settings=request.app.state.settings,
                    now=utcnow(),
                    take=take,
                )
                prepared.append(found)
                return redemption.read(found.row)

            async def reserve() -> None:
                # Last, after the stored response: the hold is taken and spent just before
                # the commit.
                await prepared[0].reserve()

            try:
                result = await run_idempotent(
                    session,
                    owner=str(user.id),
                    scope="POST /api/v1/rewards/redeem",
                    key=key,
                    request=body.model_dump(mode="json"),
                    status_code=201,
                    handler=handler,
                    finish=reserve,
                )
                await commit(session)
            except OutOfStock:
                if body.quantity == 1:  # then none is left (a larger ask may still fit less)
                    gone.mark(body.reward_id, gen)
                await _give_back(session, maker, holds)
                raise
            except BaseException:
                await _give_back(session, maker, holds)
                raise
    return result.response()


async def _give_back(session: Any, maker: Any, holds: list[uuid.UUID]) -> None:
    """A redemption that took units and did not commit: its transaction ends first (its
    uncommitted delete of the hold would block the give-back), then the units go back."""
    if not holds:
        return
    await asyncio.shield(_give_back_now(session, maker, list(holds)))


async def _give_back_now(session: Any, maker: Any, holds: list[uuid.UUID]) -> None:
    with contextlib.suppress(Exception):  # (cancelled: the request's own rollback ends it)
        await session.rollback()
    async with session_scope(maker) as own:
        await redemption.give_back(session=own, hold_ids=holds)


@router.get(
    "/redemptions",
    response_model=RedemptionPage,
    dependencies=relaxed,
    summary="The caller's redemptions, newest first (cursor-paginated)",
)
async def redemptions(
    user: CurrentUser,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int | None, Query()] = None,
) -> RedemptionPage:
    size = clamp_limit(limit)
    value = decode_cursor(cursor)
    before = None
    if value is not None:
        try:
            before = (dt.datetime.fromisoformat(value["t"]), uuid.UUID(value["id"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest("Invalid cursor", code="INVALID_CURSOR") from exc
        if before[0].tzinfo is None:
            raise BadRequest("Invalid cursor", code="INVALID_CURSOR")
    rows = await redemption.list_for(
        session=session, user_id=user.id, before=before, limit=size + 1
    )
    nxt = None
    if len(rows) > size:
        last = rows[size - 1]
        nxt = encode_cursor({"t": last.created_at.isoformat(), "id": str(last.id)})
    return RedemptionPage(items=[redemption.read(r) for r in rows[:size]], cursor=nxt)


@router.get(
    "/redemptions/{redemption_id}",
    response_model=RedemptionRead,
    dependencies=relaxed,
    summary="One of the caller's redemptions",
    responses={404: {"description": "REDEMPTION_NOT_FOUND"}},
)
async def get_redemption(
    redemption_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> RedemptionRead:
    row = await redemption.get(session=session, redemption_id=redemption_id, user_id=user.id)
    return redemption.read(row)


@router.get(
    "/leaderboard",
    response_model=LeaderboardRead,
    dependencies=relaxed,
    summary="Points earned in the period, ranked",
)
async def get_leaderboard(
    user: CurrentUser,
    request: Request,
    period: Period = "weekly",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Response:
    now = utcnow()

    async def load() -> bytes:
        return (await _board(user.id, request, period, limit, now)).model_dump_json().encode()

    key = (leaderboard.redis_key(period, now), limit, user.id.bytes)
    return _json(await read_cache.board(request.app.state.redis, key, load))


async def _board(
    me: uuid.UUID, request: Request, period: Period, limit: int, now: dt.datetime
) -> LeaderboardRead:
    board = await leaderboard.read(
        request.app.state.redis, period=period, now=now, limit=limit, me=me
    )
    secret = request.app.state.settings.jwt_secret

    def entry(rank: int, user_id: uuid.UUID, points: int, name: str | None) -> LeaderboardEntry:
        mine = user_id == me
        return LeaderboardEntry(
            rank=rank,
            display_name=name or leaderboard.alias(user_id, secret),
            points=points,
            is_me=mine,
            user_id=user_id if mine else None,
        )

    items = []
    rank = 0
    last: int | None = None
    for i, row in enumerate(board.rows, start=1):
        if row.points != last:
            rank, last = i, row.points
        items.append(entry(rank, row.user_id, row.points, row.name))
    mine = entry(board.me[0], me, board.me[1], board.my_name) if board.me else None
    return LeaderboardRead(
        period=period, period_key=leaderboard.period_key(period, now), items=items, me=mine
    )


@router.post(
    "/daily-streak",
    response_model=StreakRead,
    dependencies=relaxed,
    summary="Claim today's streak (one claim per local day of the caller's time zone)",
    responses={409: {"description": "ALREADY_CLAIMED"}},
)
async def daily_streak(
    user: ActiveUser, session: SessionDep, request: Request, device: DeviceHeader = None
) -> StreakRead:
    await _device(session, request, user.id, device)
    claim = await streaks.claim(
        session=session, user_id=user.id, settings=request.app.state.settings, now=utcnow()
    )
    return StreakRead(
        streak=claim.streak,
        best=claim.best,
        freezes=claim.freezes,
        freezes_used=claim.freezes_used,
        local_date=claim.local_date,
        timezone=claim.timezone,
        points=claim.points,
    )


@router.get("/settings", response_model=SettingsRead, dependencies=relaxed, summary="Settings")
async def get_settings(user: CurrentUser, session: SessionDep, request: Request) -> SettingsRead:
    row = await tiers.profile(session=session, user_id=user.id, settings=request.app.state.settings)
    return SettingsRead(
        timezone=row.timezone,
        leaderboard_public=row.leaderboard_public,
        streak=row.streak,
        freezes=row.freezes,
        streak_last_day=row.streak_last_day,
    )


@router.put(
    "/settings",
    response_model=SettingsRead,
    dependencies=relaxed,
    summary="Set the streak's time zone (IANA name) and whether the leaderboards show my name",
    responses={
        409: {"description": "TIMEZONE_CHANGE_TOO_SOON"},
        422: {"description": "INVALID_TIMEZONE"},
    },
)
async def put_settings(
    body: SettingsWrite, user: CurrentUser, session: SessionDep, request: Request
) -> SettingsRead:
    row = await streaks.update_settings(
        session=session,
        user_id=user.id,
        timezone=body.timezone,
        leaderboard_public=body.leaderboard_public,
        settings=request.app.state.settings,
        now=utcnow(),
    )
    return SettingsRead(
        timezone=row.timezone,
        leaderboard_public=row.leaderboard_public,
        streak=row.streak,
        freezes=row.freezes,
        streak_last_day=row.streak_last_day,
    )


@router.get(
    "/referrals",
    response_model=ReferralsRead,
    dependencies=relaxed,
    summary="The caller's referral code and referees",
)
async def get_referrals(
    user: CurrentUser, session: SessionDep, request: Request, device: DeviceHeader = None
) -> ReferralsRead:
    await _device(session, request, user.id, device)
    settings = request.app.state.settings
    code, rows, signed_up, done = await referrals.overview(
        session=session, user_id=user.id, now=utcnow()
    )
    known = {r.referee_id: r for r in rows}
    referees = []
    for referee_id, joined in signed_up:
        row = known.get(referee_id)
        referees.append(
            RefereeRead(
                user_id=referee_id,
                status=row.status if row else "signed_up",
                refusal_reason=row.refusal_reason if row else None,
                joined_at=joined,
                rewarded_at=row.rewarded_at if row else None,
            )
        )
    return ReferralsRead(
        code=code,
        referrer_points=settings.rewards_referrer_points,
        referee_points=settings.rewards_referee_points,
        min_deposit_cents=settings.rewards_referral_min_deposit_cents,
        yearly_cap=settings.rewards_referral_yearly_cap,
        rewarded_this_year=done,
        referees=referees,
    )
