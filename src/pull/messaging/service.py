"""Messaging: each customer's Matrix account, PULL's rooms, sending and reading, moderation.

Accounts and rooms are provisioned lazily, under an advisory lock, in the caller's
transaction: a customer's account (shared-secret registration) and private "PULL alerts"
room on first use; a market's public room when its first customer joins; an asset's room
(owners only) likewise; one DM room per pair of customers. Messages live on the homeserver;
PULL checks membership, mutes and the per-user send limit before relaying a send.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.kit.db import utcnow
from pull.messaging import repository as repo
from pull.messaging.connection import close_homeservers, unavailable
from pull.messaging.errors import Muted, ReadOnlyRoom
from pull.messaging.matrix import MatrixError
from pull.messaging.models import MatrixRoom
from pull.messaging.moderation import Moderation
from pull.messaging.rooms import Rooms
from pull.messaging.schemas import MessageRead
from pull.messaging.views import message_read, visible

__all__ = ["Messaging", "close_homeservers", "list_rooms"]


class Messaging(Rooms, Moderation):
    """The messaging service for one request or activity: accounts and rooms (accounts.py,
    rooms.py), moderation (moderation.py), and sending and reading here."""

    # --- messages ------------------------------------------------------------------------

    async def send(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        room_id: uuid.UUID,
        body: str,
        txn_id: str | None,
    ) -> str:
        room = await self._member_room(session, user_id, room_id)
        if room.kind == "alerts":
            raise ReadOnlyRoom()
        mute = await repo.mute(session, room_id=room.id, user_id=user_id)
        if mute is not None and (mute.until is None or mute.until > utcnow()):
            raise Muted(details={"until": mute.until.isoformat() if mute.until else None})
        creds = await self.account(session, user_id)
        try:
            return await self.hs.send_text(
                creds,
                room_id=room.matrix_room_id,
                body=body,
                txn_id=f"pull-{txn_id}" if txn_id else f"pull-{uuid.uuid4().hex}",
            )
        except MatrixError as exc:
            raise unavailable(exc) from exc

    async def messages(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        room_id: uuid.UUID,
        start: str | None,
        limit: int,
    ) -> tuple[list[MessageRead], str | None, bool]:
        """Newest first. Without `start`: the room's sync timeline, back-filled through
        `/messages` from `prev_batch` when the homeserver marked it `limited`. With `start`:
        `/messages` backwards from there."""
        room = await self._member_room(session, user_id, room_id)
        creds = await self.account(session, user_id)
        backfilled = False
        try:
            if start is not None:
                page = await self.hs.messages(
                    creds, room_id=room.matrix_room_id, start=start, limit=limit
                )
                events, nxt = page.events, page.end
            else:
                timeline = await self.hs.sync_room(creds, room_id=room.matrix_room_id, limit=limit)
                events = list(reversed(timeline.events))
                nxt = timeline.prev_batch
                while timeline.limited and nxt and len(visible(events)) < limit:
                    # ask only for what is missing, so no event is fetched and then dropped
                    # (the returned token continues right after the last one shown)
                    backfilled = True
                    page = await self.hs.messages(
                        creds,
                        room_id=room.matrix_room_id,
                        start=nxt,
                        limit=limit - len(visible(events)),
                    )
                    events.extend(page.events)
                    if not page.events or page.end is None:
                        nxt = None
                        break
                    nxt = page.end
        except MatrixError as exc:
            raise unavailable(exc) from exc
        return [message_read(e) for e in visible(events)], nxt, backfilled

    # --- Element and other clients ---------------------------------------------------------

    async def client_token(self, session: AsyncSession, user_id: uuid.UUID) -> tuple[str, str]:
        """A new access token (its own device) for the customer's Matrix account."""
        creds = await self.account(session, user_id)
        try:
            token = await self.hs.login_as(admin=await self.bot(session), user_id=creds.user_id)
        except MatrixError as exc:
            raise unavailable(exc) from exc
        return creds.user_id, token


async def list_rooms(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[tuple[MatrixRoom, dt.datetime]]:
    return await repo.rooms_of(session, user_id=user_id, before=before, limit=limit)
