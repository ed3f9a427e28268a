"""SQL of the messaging module."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pull.messaging.models import (
    MatrixAccount,
    MatrixMember,
    MatrixRoom,
    MatrixServiceAccount,
    MessageReport,
    RoomMute,
)


async def lock(session: AsyncSession, key: str) -> None:
    """A transaction-scoped advisory lock: one provisioning of an account or room at a time."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})


async def account(session: AsyncSession, user_id: uuid.UUID) -> MatrixAccount | None:
    return await session.get(MatrixAccount, user_id)


async def accounts_by_matrix_ids(
    session: AsyncSession, matrix_ids: Sequence[str]
) -> dict[str, uuid.UUID]:
    if not matrix_ids:
        return {}
    rows = await session.execute(
        select(MatrixAccount.matrix_user_id, MatrixAccount.user_id).where(
            MatrixAccount.matrix_user_id.in_(list(matrix_ids))
        )
    )
    return {m: u for m, u in rows.all()}


def add(session: AsyncSession, row: object) -> None:
    session.add(row)


async def service_account(session: AsyncSession, name: str) -> MatrixServiceAccount | None:
    return await session.get(MatrixServiceAccount, name)


async def room(session: AsyncSession, room_id: uuid.UUID) -> MatrixRoom | None:
    return await session.get(MatrixRoom, room_id)


async def room_by_subject(session: AsyncSession, kind: str, subject: str) -> MatrixRoom | None:
    q = select(MatrixRoom).where(MatrixRoom.kind == kind, MatrixRoom.subject == subject)
    return (await session.scalars(q)).first()


async def add_member(
    session: AsyncSession, *, room_id: uuid.UUID, user_id: uuid.UUID, at: dt.datetime
) -> None:
    await session.execute(
        insert(MatrixMember)
        .values(room_id=room_id, user_id=user_id, joined_at=at)
        .on_conflict_do_nothing()
    )


async def is_member(session: AsyncSession, *, room_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    return await session.get(MatrixMember, (room_id, user_id)) is not None


async def rooms_of(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[tuple[MatrixRoom, dt.datetime]]:
    q = (
        select(MatrixRoom, MatrixMember.joined_at)
        .join(MatrixMember, MatrixMember.room_id == MatrixRoom.id)
        .where(MatrixMember.user_id == user_id)
    )
    if before is not None:
        at, rid = before
        q = q.where(
            or_(
                MatrixMember.joined_at < at,
                and_(MatrixMember.joined_at == at, MatrixMember.room_id < rid),
            )
        )
    q = q.order_by(MatrixMember.joined_at.desc(), MatrixMember.room_id.desc()).limit(limit)
    return [(r, at) for r, at in (await session.execute(q)).all()]


async def members(session: AsyncSession, room_id: uuid.UUID) -> list[uuid.UUID]:
    q = select(MatrixMember.user_id).where(MatrixMember.room_id == room_id)
    return list((await session.scalars(q)).all())


async def mute(session: AsyncSession, *, room_id: uuid.UUID, user_id: uuid.UUID) -> RoomMute | None:
    return await session.get(RoomMute, (room_id, user_id))


async def upsert_mute(
    session: AsyncSession,
    *,
    room_id: uuid.UUID,
    user_id: uuid.UUID,
    until: dt.datetime | None,
    reason: str,
    by: uuid.UUID,
) -> None:
    stmt = insert(RoomMute).values(
        room_id=room_id, user_id=user_id, until=until, reason=reason, muted_by=by
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["room_id", "user_id"],
            set_={"until": until, "reason": reason, "muted_by": by},
        )
    )


async def delete_mute(session: AsyncSession, *, room_id: uuid.UUID, user_id: uuid.UUID) -> None:
    row = await session.get(RoomMute, (room_id, user_id))
    if row is not None:
        await session.delete(row)


async def add_report(session: AsyncSession, row: MessageReport) -> MessageReport | None:
    """None when this reporter already reported this event."""
    stmt = (
        insert(MessageReport)
        .values(
            id=row.id,
            room_id=row.room_id,
            event_id=row.event_id,
            sender=row.sender,
            reporter_id=row.reporter_id,
            reason=row.reason,
            status="open",
        )
        .on_conflict_do_nothing(constraint="uq_message_reports_event_reporter")
        .returning(MessageReport)
    )
    return (await session.scalars(stmt)).first()


async def report(
    session: AsyncSession, report_id: uuid.UUID, *, lock: bool = False
) -> MessageReport | None:
    q = select(MessageReport).where(MessageReport.id == report_id)
    if lock:
        q = q.with_for_update()
    return (await session.scalars(q)).first()


async def resolve_reports(session: AsyncSession, *, event_id: str, status: str) -> None:
    await session.execute(
        update(MessageReport)
        .where(MessageReport.event_id == event_id, MessageReport.status == "open")
        .values(status=status)
    )


async def reports(
    session: AsyncSession,
    *,
    status: str | None,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[MessageReport]:
    q = select(MessageReport)
    if status:
        q = q.where(MessageReport.status == status)
    if before is not None:
        at, rid = before
        q = q.where(
            or_(
                MessageReport.created_at < at,
                and_(MessageReport.created_at == at, MessageReport.id < rid),
            )
        )
    q = q.order_by(MessageReport.created_at.desc(), MessageReport.id.desc()).limit(limit)
    return list((await session.scalars(q)).all())


async def count_rooms(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(MatrixRoom)) or 0)
