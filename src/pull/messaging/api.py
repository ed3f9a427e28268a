"""Messaging routes: rooms, messages, DMs, a Matrix token for other clients; admin
moderation (reports, redaction, mutes)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status

from pull.identity.deps import AdminUser, CurrentUser
from pull.kit.db import SessionDep
from pull.kit.errors import BadRequest
from pull.kit.pagination import clamp_limit, created_before, created_next, encode_cursor
from pull.kit.ratelimit import general, messaging_routes
from pull.messaging import moderation, service, views
from pull.messaging.schemas import (
    DirectMessage,
    MatrixToken,
    MessagePage,
    Mute,
    Redact,
    ReportCreate,
    ReportPage,
    ReportRead,
    RoomPage,
    RoomRead,
    SendMessage,
    Sent,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    429: {"description": "Rate limited"},
    503: {"description": "MESSAGING_UNAVAILABLE: the homeserver is not reachable"},
}
router = APIRouter(
    prefix="/api/v1/messages",
    tags=["messaging"],
    responses=_ERRORS,
    dependencies=[Depends(general)],
)
admin_router = APIRouter(prefix="/api/admin/messages", tags=["messaging"], responses=_ERRORS)


def routers() -> list[APIRouter]:
    return [router, admin_router]


async def _svc(request: Request) -> service.Messaging:
    return service.Messaging(request.app.state.settings)


Svc = Annotated[service.Messaging, Depends(_svc)]
Cursor = Annotated[str | None, Query(max_length=300)]
Limit = Annotated[int | None, Query()]


@router.get(
    "/rooms",
    response_model=RoomPage,
    summary="My rooms (alerts, markets, assets, DMs), newest joined first (cursor-paginated)",
)
async def rooms(
    user: CurrentUser, session: SessionDep, svc: Svc, cursor: Cursor = None, limit: Limit = None
) -> RoomPage:
    size = clamp_limit(limit)
    before = created_before(cursor)
    if before is None:
        await svc.alerts_room(session, user.id)  # provisions the account on first use
    rows = await service.list_rooms(session=session, user_id=user.id, before=before, limit=size + 1)
    nxt = None
    if len(rows) > size:
        room, at = rows[size - 1]
        nxt = encode_cursor({"t": at.isoformat(), "id": str(room.id)})
    return RoomPage(items=[views.room_read(r, at) for r, at in rows[:size]], cursor=nxt)


@router.post(
    "/rooms/market/{ticker}",
    response_model=RoomRead,
    summary="Join a prediction market's public room",
    responses={404: {"description": "MARKET_NOT_FOUND"}},
)
async def join_market(user: CurrentUser, session: SessionDep, svc: Svc, ticker: str) -> RoomRead:
    return await svc.join_market(session, user.id, ticker)


@router.post(
    "/rooms/asset/{asset_id}",
    response_model=RoomRead,
    summary="Join a real-world asset's room (owners of its shares only)",
    responses={403: {"description": "NOT_AN_OWNER"}},
)
async def join_asset(
    user: CurrentUser, session: SessionDep, svc: Svc, asset_id: uuid.UUID
) -> RoomRead:
    return await svc.join_asset(session, user.id, asset_id)


@router.post(
    "/dm",
    response_model=RoomRead,
    summary="Open (or get) the direct-message room with another customer",
    responses={400: {"description": "CANNOT_MESSAGE_SELF"}, 404: {"description": "USER_NOT_FOUND"}},
)
async def dm(user: CurrentUser, session: SessionDep, svc: Svc, body: DirectMessage) -> RoomRead:
    return await svc.open_dm(session, user.id, body.user_id)


@router.post(
    "/rooms/{room_id}/messages",
    response_model=Sent,
    status_code=status.HTTP_201_CREATED,
    summary="Send a text message (per-user rate limit; muted users are refused)",
    dependencies=[Depends(messaging_routes)],
    responses={
        403: {"description": "NOT_A_MEMBER, MUTED or READ_ONLY_ROOM"},
        404: {"description": "ROOM_NOT_FOUND"},
    },
)
async def send(
    user: CurrentUser, session: SessionDep, svc: Svc, room_id: uuid.UUID, body: SendMessage
) -> Sent:
    event_id = await svc.send(
        session, user_id=user.id, room_id=room_id, body=body.body, txn_id=body.txn_id
    )
    return Sent(event_id=event_id)


@router.get(
    "/rooms/{room_id}/messages",
    response_model=MessagePage,
    summary="Messages, newest first; `from` continues backwards (Matrix /messages)",
    responses={403: {"description": "NOT_A_MEMBER"}, 404: {"description": "ROOM_NOT_FOUND"}},
)
async def messages(
    user: CurrentUser,
    session: SessionDep,
    svc: Svc,
    room_id: uuid.UUID,
    from_: Annotated[str | None, Query(alias="from", min_length=1, max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MessagePage:
    items, nxt, backfilled = await svc.messages(
        session, user_id=user.id, room_id=room_id, start=from_, limit=limit
    )
    return MessagePage(items=items, next=nxt, backfilled=backfilled)


@router.post(
    "/rooms/{room_id}/messages/{event_id}/report",
    response_model=ReportRead,
    status_code=status.HTTP_201_CREATED,
    summary="Report a message to PULL's moderators",
    responses={404: {"description": "EVENT_NOT_FOUND"}, 409: {"description": "ALREADY_REPORTED"}},
)
async def report(
    user: CurrentUser,
    session: SessionDep,
    svc: Svc,
    room_id: uuid.UUID,
    event_id: str,
    body: ReportCreate,
) -> ReportRead:
    if not event_id.startswith("$") or len(event_id) > 255:
        raise BadRequest("Not a Matrix event id", code="INVALID_EVENT_ID")
    row = await svc.report(
        session, user_id=user.id, room_id=room_id, event_id=event_id, reason=body.reason
    )
    return ReportRead.model_validate(row)


@router.post(
    "/token",
    response_model=MatrixToken,
    summary="A Matrix access token of my account, for Element or any Matrix client",
)
async def token(user: CurrentUser, session: SessionDep, svc: Svc, request: Request) -> MatrixToken:
    matrix_user_id, access_token = await svc.client_token(session, user.id)
    settings = request.app.state.settings
    return MatrixToken(
        homeserver=settings.matrix_client_url or settings.matrix_homeserver_url,
        user_id=matrix_user_id,
        access_token=access_token,
    )


# --- admin moderation ---------------------------------------------------------------------


@admin_router.get("/reports", response_model=ReportPage, summary="Reported messages")
async def reports(
    admin: AdminUser,
    session: SessionDep,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(open|redacted|dismissed)$")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> ReportPage:
    size = clamp_limit(limit)
    rows = await moderation.reports(
        session=session, status=status_, before=created_before(cursor), limit=size + 1
    )
    return ReportPage(
        items=[ReportRead.model_validate(r) for r in rows[:size]], cursor=created_next(rows, size)
    )


@admin_router.post(
    "/reports/{report_id}/dismiss", response_model=ReportRead, summary="Dismiss a report"
)
async def dismiss(admin: AdminUser, session: SessionDep, report_id: uuid.UUID) -> ReportRead:
    return ReportRead.model_validate(
        await moderation.dismiss_report(session=session, report_id=report_id)
    )


@admin_router.post(
    "/rooms/{room_id}/redact", response_model=Sent, summary="Redact a message (resolves reports)"
)
async def redact(
    admin: AdminUser, session: SessionDep, svc: Svc, room_id: uuid.UUID, body: Redact
) -> Sent:
    event_id = await svc.redact(
        session, room_id=room_id, event_id=body.event_id, reason=body.reason
    )
    return Sent(event_id=event_id)


@admin_router.post(
    "/rooms/{room_id}/mute",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Mute a customer in a room (PULL refuses their sends; in market and asset rooms "
    "their Matrix power level drops to -1 too)",
)
async def mute(
    admin: AdminUser, session: SessionDep, svc: Svc, room_id: uuid.UUID, body: Mute
) -> None:
    await svc.mute(
        session,
        admin_id=admin.id,
        room_id=room_id,
        user_id=body.user_id,
        minutes=body.minutes,
        reason=body.reason,
    )


@admin_router.delete(
    "/rooms/{room_id}/mute/{user_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Unmute"
)
async def unmute(
    admin: AdminUser, session: SessionDep, room_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    await moderation.unmute(session=session, room_id=room_id, user_id=user_id)
