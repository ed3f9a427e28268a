"""Accounts and rooms: each customer's Matrix account (shared-secret registration) and
private "PULL alerts" room, and the rooms PULL creates, provisioned lazily under an advisory
lock in the caller's transaction."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.identity import service as identity
from pull.kit.crypto import FieldCipher
from pull.kit.db import utcnow
from pull.messaging import repository as repo
from pull.messaging.connection import BOT, homeserver, localpart, unavailable
from pull.messaging.errors import NotAMember, RoomNotFound, UserNotFound
from pull.messaging.matrix import Credentials, MatrixError
from pull.messaging.models import MatrixAccount, MatrixRoom, MatrixServiceAccount
from pull.messaging.schemas import RoomRead
from pull.messaging.views import room_read


class MessagingCore:
    """The messaging service's state for one request or activity (settings, the homeserver
    client, the field cipher for tokens) and the provisioning of accounts and rooms."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hs = homeserver(settings)
        self.cipher = FieldCipher(settings.field_encryption_keys)

    # --- accounts ------------------------------------------------------------------------

    async def bot(self, session: AsyncSession) -> Credentials:
        row = await repo.service_account(session, BOT)
        if row is None:
            await repo.lock(session, "matrix:bot")
            row = await repo.service_account(session, BOT)
        if row is None:
            # The bot's password is derived from the shared secret, so a bot registered before
            # (a rolled-back transaction, a restored database) can log in again.
            password = hmac.new(
                self.settings.matrix_registration_shared_secret.encode(),
                b"pull bot password",
                hashlib.sha256,
            ).hexdigest()
            try:
                try:
                    creds = await self.hs.register(localpart=BOT, password=password, admin=True)
                except MatrixError as exc:
                    if exc.status != "M_USER_IN_USE":
                        raise
                    creds = await self.hs.password_login(localpart=BOT, password=password)
            except MatrixError as exc:
                raise unavailable(exc) from exc
            row = MatrixServiceAccount(
                name=BOT,
                matrix_user_id=creds.user_id,
                access_token_enc=self.cipher.encrypt(creds.access_token),
            )
            repo.add(session, row)
            await session.flush()
        return Credentials(row.matrix_user_id, self.cipher.decrypt(row.access_token_enc), "PULL")

    async def account(self, session: AsyncSession, user_id: uuid.UUID) -> Credentials:
        """The customer's Matrix account (and alerts room), provisioned on first use."""
        row = await repo.account(session, user_id)
        if row is None:
            await repo.lock(session, f"matrix:user:{user_id}")
            row = await repo.account(session, user_id)
        if row is None:
            row = await self._provision(session, user_id)
        return Credentials(
            row.matrix_user_id, self.cipher.decrypt(row.access_token_enc), row.device_id
        )

    async def _provision(self, session: AsyncSession, user_id: uuid.UUID) -> MatrixAccount:
        if await identity.get_user(session=session, user_id=user_id) is None:
            raise UserNotFound()
        try:
            try:
                creds = await self.hs.register(
                    localpart=localpart(user_id), password=secrets.token_urlsafe(32)
                )
            except MatrixError as exc:
                if exc.status != "M_USER_IN_USE":
                    raise
                # registered before a rollback: take a new token for the existing user
                bot = await self.bot(session)
                mxid = f"@{localpart(user_id)}:{bot.user_id.split(':', 1)[1]}"
                token = await self.hs.login_as(admin=bot, user_id=mxid)
                creds = Credentials(mxid, token, "PULL")
        except MatrixError as exc:
            raise unavailable(exc) from exc
        row = MatrixAccount(
            user_id=user_id,
            matrix_user_id=creds.user_id,
            access_token_enc=self.cipher.encrypt(creds.access_token),
            device_id=creds.device_id,
        )
        repo.add(session, row)
        await session.flush()
        await self.alerts_room(session, user_id, creds)
        return row

    # --- rooms ---------------------------------------------------------------------------

    async def _room(
        self,
        session: AsyncSession,
        *,
        kind: str,
        subject: str,
        name: str,
        creator: Credentials,
        public: bool,
        invite: list[str],
        is_direct: bool = False,
        read_only: bool = False,
    ) -> MatrixRoom:
        room = await repo.room_by_subject(session, kind, subject)
        if room is not None:
            return room
        await repo.lock(session, f"matrix:room:{kind}:{subject}")
        room = await repo.room_by_subject(session, kind, subject)
        if room is not None:
            return room
        try:
            matrix_room_id = await self.hs.create_room(
                creator,
                name=name,
                public=public,
                invite=invite,
                is_direct=is_direct,
                read_only=read_only,
            )
        except MatrixError as exc:
            raise unavailable(exc) from exc
        room = MatrixRoom(matrix_room_id=matrix_room_id, kind=kind, subject=subject, name=name)
        repo.add(session, room)
        await session.flush()
        return room

    async def alerts_room(
        self, session: AsyncSession, user_id: uuid.UUID, creds: Credentials | None = None
    ) -> MatrixRoom:
        creds = creds or await self.account(session, user_id)
        bot = await self.bot(session)
        room = await self._room(
            session,
            kind="alerts",
            subject=str(user_id),
            name="PULL alerts",
            creator=bot,
            public=False,
            invite=[creds.user_id],
            read_only=True,
        )
        if not await repo.is_member(session, room_id=room.id, user_id=user_id):
            await self._join(session, room, user_id, creds)
        return room

    async def _join(
        self, session: AsyncSession, room: MatrixRoom, user_id: uuid.UUID, creds: Credentials
    ) -> None:
        try:
            await self.hs.join(creds, room_id=room.matrix_room_id)
        except MatrixError as exc:
            raise unavailable(exc) from exc
        await repo.add_member(session, room_id=room.id, user_id=user_id, at=utcnow())

    async def _read(self, session: AsyncSession, room: MatrixRoom, user_id: uuid.UUID) -> RoomRead:
        rows = await repo.rooms_of(session, user_id=user_id, before=None, limit=1_000_000)
        joined = next((at for r, at in rows if r.id == room.id), utcnow())
        return room_read(room, joined)

    async def _member_room(
        self, session: AsyncSession, user_id: uuid.UUID, room_id: uuid.UUID
    ) -> MatrixRoom:
        room = await repo.room(session, room_id)
        if room is None:
            raise RoomNotFound()
        if not await repo.is_member(session, room_id=room.id, user_id=user_id):
            raise NotAMember()
        return room
