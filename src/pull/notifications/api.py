"""Notification routes: the inbox, preferences, push devices and price alerts."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status

from pull.identity.deps import CurrentUser
from pull.kit.db import SessionDep
from pull.kit.pagination import clamp_limit, created_before, created_next
from pull.kit.ratelimit import general
from pull.notifications import service
from pull.notifications.schemas import (
    AlertCreate,
    AlertPage,
    AlertRead,
    DeliveryRead,
    DeviceList,
    DeviceRead,
    DeviceWrite,
    MarkedRead,
    MarkRead,
    NotificationPage,
    NotificationRead,
    PreferencesRead,
    PreferencesWrite,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    429: {"description": "Rate limited"},
}
limited = [Depends(general)]
router = APIRouter(
    prefix="/api/v1/notifications", tags=["notifications"], responses=_ERRORS, dependencies=limited
)
alerts_router = APIRouter(
    prefix="/api/v1/alerts", tags=["notifications"], responses=_ERRORS, dependencies=limited
)


def routers() -> list[APIRouter]:
    return [router, alerts_router]


Cursor = Annotated[str | None, Query(max_length=300)]
Limit = Annotated[int | None, Query()]


@router.get(
    "",
    response_model=NotificationPage,
    summary="Notifications, newest first, with the unread count (cursor-paginated)",
    responses={400: {"description": "INVALID_CURSOR or INVALID_LIMIT"}},
)
async def list_notifications(
    user: CurrentUser,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Limit = None,
    unread_only: bool = False,
) -> NotificationPage:
    size = clamp_limit(limit)
    items, unread = await service.list_notifications(
        session=session,
        user_id=user.id,
        before=created_before(cursor),
        unread_only=unread_only,
        limit=size + 1,
    )
    return NotificationPage(
        items=[NotificationRead.model_validate(n) for n in items[:size]],
        cursor=created_next(items, size),
        unread_count=unread,
    )


@router.post("/read", response_model=MarkedRead, summary="Mark notifications read (all if no ids)")
async def mark_read(user: CurrentUser, session: SessionDep, body: MarkRead) -> MarkedRead:
    marked, unread = await service.mark_read(session=session, user_id=user.id, ids=body.ids)
    return MarkedRead(marked=marked, unread_count=unread)


@router.get(
    "/preferences", response_model=PreferencesRead, summary="Channels per type, quiet hours"
)
async def get_preferences(user: CurrentUser, session: SessionDep) -> PreferencesRead:
    return await service.get_preferences(session=session, user_id=user.id)


@router.put(
    "/preferences",
    response_model=PreferencesRead,
    summary="Change channels per type, the time zone and quiet hours (only what is given)",
    responses={400: {"description": "INVALID_TIME_ZONE"}},
)
async def put_preferences(
    user: CurrentUser, session: SessionDep, body: PreferencesWrite
) -> PreferencesRead:
    return await service.put_preferences(session=session, user_id=user.id, data=body)


@router.get("/devices", response_model=DeviceList, summary="Devices registered for push")
async def list_devices(user: CurrentUser, session: SessionDep) -> DeviceList:
    rows = await service.list_devices(session=session, user_id=user.id)
    return DeviceList(items=[DeviceRead.model_validate(d) for d in rows])


@router.post(
    "/devices",
    response_model=DeviceRead,
    status_code=status.HTTP_201_CREATED,
    summary="Register an FCM or APNs device token for push",
)
async def register_device(user: CurrentUser, session: SessionDep, body: DeviceWrite) -> DeviceRead:
    row = await service.register_device(
        session=session, user_id=user.id, platform=body.platform, token=body.token
    )
    return DeviceRead.model_validate(row)


@router.delete(
    "/devices/{device_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop push to a device",
    responses={404: {"description": "DEVICE_NOT_FOUND"}},
)
async def remove_device(user: CurrentUser, session: SessionDep, device_id: uuid.UUID) -> None:
    await service.remove_device(session=session, user_id=user.id, device_id=device_id)


@router.post(
    "/{notification_id}/read",
    response_model=MarkedRead,
    summary="Mark one notification read",
    responses={404: {"description": "NOTIFICATION_NOT_FOUND"}},
)
async def mark_one_read(
    user: CurrentUser, session: SessionDep, notification_id: uuid.UUID
) -> MarkedRead:
    await service.get_own(session=session, user_id=user.id, notification_id=notification_id)
    marked, unread = await service.mark_read(
        session=session, user_id=user.id, ids=[notification_id]
    )
    return MarkedRead(marked=marked, unread_count=unread)


@router.get(
    "/{notification_id}/deliveries",
    response_model=list[DeliveryRead],
    summary="Where a notification went: one row per channel",
    responses={404: {"description": "NOTIFICATION_NOT_FOUND"}},
)
async def deliveries(
    user: CurrentUser, session: SessionDep, notification_id: uuid.UUID
) -> list[DeliveryRead]:
    await service.get_own(session=session, user_id=user.id, notification_id=notification_id)
    rows = await service.deliveries(session=session, notification_id=notification_id)
    return [DeliveryRead.model_validate(d) for d in sorted(rows, key=lambda d: d.channel)]


@alerts_router.post(
    "",
    response_model=AlertRead,
    status_code=status.HTTP_201_CREATED,
    summary="Alert me when a market trades at or above / at or below a price (fires once)",
    responses={404: {"description": "MARKET_NOT_FOUND"}, 409: {"description": "TOO_MANY_ALERTS"}},
)
async def create_alert(user: CurrentUser, session: SessionDep, body: AlertCreate) -> AlertRead:
    row = await service.create_alert(session=session, user_id=user.id, data=body)
    return AlertRead.model_validate(row)


@alerts_router.get(
    "",
    response_model=AlertPage,
    summary="My price alerts, newest first (cursor-paginated)",
    responses={400: {"description": "INVALID_CURSOR or INVALID_LIMIT"}},
)
async def list_alerts(
    user: CurrentUser, session: SessionDep, cursor: Cursor = None, limit: Limit = None
) -> AlertPage:
    size = clamp_limit(limit)
    rows = await service.list_alerts(
        session=session, user_id=user.id, before=created_before(cursor), limit=size + 1
    )
    return AlertPage(
        items=[AlertRead.model_validate(a) for a in rows[:size]], cursor=created_next(rows, size)
    )


@alerts_router.delete(
    "/{alert_id}",
    response_model=AlertRead,
    summary="Cancel a price alert",
    responses={404: {"description": "ALERT_NOT_FOUND"}},
)
async def cancel_alert(user: CurrentUser, session: SessionDep, alert_id: uuid.UUID) -> AlertRead:
    row = await service.cancel_alert(session=session, user_id=user.id, alert_id=alert_id)
    return AlertRead.model_validate(row)
