"""Moderation: reports, admin redaction, mutes (PULL's and the Matrix power level)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.kit.db import utcnow
from pull.messaging import repository as repo
from pull.messaging.accounts import MessagingCore
from pull.messaging.connection import unavailable
from pull.messaging.errors import AlreadyReported, EventNotFound, ReportNotFound, RoomNotFound
from pull.messaging.matrix import Credentials, MatrixError
from pull.messaging.models import MatrixRoom, MessageReport


class Moderation(MessagingCore):
    async def report(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        room_id: uuid.UUID,
        event_id: str,
        reason: str,
    ) -> MessageReport:
        room = await self._member_room(session, user_id, room_id)
        sender = await self._sender_of(session, room, user_id, event_id)
        row = await repo.add_report(
            session,
            MessageReport(
                id=uuid.uuid4(),
                room_id=room.id,
                event_id=event_id,
                sender=sender,
                reporter_id=user_id,
                reason=reason,
            ),
        )
        if row is None:
            raise AlreadyReported()
        return row

    async def _sender_of(
        self, session: AsyncSession, room: MatrixRoom, user_id: uuid.UUID, event_id: str
    ) -> str:
        creds = await self.account(session, user_id)
        try:
            sender = await self.hs.event_sender(
                creds, room_id=room.matrix_room_id, event_id=event_id
            )
        except MatrixError as exc:
            raise unavailable(exc) from exc
        if sender is None:
            raise EventNotFound()
        return sender

    async def redact(
        self,
        session: AsyncSession,
        *,
        room_id: uuid.UUID,
        event_id: str,
        reason: str,
    ) -> str:
        """Redact a message as its sender's account (PULL provisioned it), or as the bot in
        the rooms it administers; resolves the open reports of the event."""
        room = await repo.room(session, room_id)
        if room is None:
            raise RoomNotFound()
        bot = await self.bot(session)
        members = await repo.members(session, room.id)
        actor: Credentials | None = None
        if room.kind in ("market", "asset", "alerts"):
            actor = bot
        elif members:
            actor = await self.account(session, members[0])
        if actor is None:
            raise RoomNotFound()
        try:
            redaction = await self.hs.redact(
                actor, room_id=room.matrix_room_id, event_id=event_id, reason=reason
            )
        except MatrixError as exc:
            if exc.status in ("M_NOT_FOUND", "M_FORBIDDEN"):
                raise EventNotFound() from exc
            raise unavailable(exc) from exc
        await repo.resolve_reports(session, event_id=event_id, status="redacted")
        return redaction

    async def mute(
        self,
        session: AsyncSession,
        *,
        admin_id: uuid.UUID,
        room_id: uuid.UUID,
        user_id: uuid.UUID,
        minutes: int | None,
        reason: str,
    ) -> dt.datetime | None:
        room = await repo.room(session, room_id)
        if room is None:
            raise RoomNotFound()
        until = utcnow() + dt.timedelta(minutes=minutes) if minutes else None
        await repo.upsert_mute(
            session, room_id=room.id, user_id=user_id, until=until, reason=reason, by=admin_id
        )
        if room.kind in ("market", "asset"):  # other Matrix clients are muted too
            creds = await self.account(session, user_id)
            try:
                await self.hs.set_power(
                    await self.bot(session),
                    room_id=room.matrix_room_id,
                    user_id=creds.user_id,
                    level=-1,
                )
            except MatrixError as exc:
                raise unavailable(exc) from exc
        return until


async def reports(
    *,
    session: AsyncSession,
    status: str | None,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[MessageReport]:
    return await repo.reports(session, status=status, before=before, limit=limit)


async def dismiss_report(*, session: AsyncSession, report_id: uuid.UUID) -> MessageReport:
    row = await repo.report(session, report_id, lock=True)
    if row is None:
        raise ReportNotFound()
    if row.status == "open":
        row.status = "dismissed"
    await session.flush()
    return row


async def unmute(*, session: AsyncSession, room_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await repo.delete_mute(session, room_id=room_id, user_id=user_id)
