"""Messaging: each customer's Matrix account, PULL's rooms, sending and reading, moderation.

Accounts and rooms are provisioned lazily, under an advisory lock, in the caller's
transaction: a customer's account (shared-secret registration) and private "PULL alerts"
room on first use; a market's public room when its first customer joins; an asset's room
(owners only) likewise; one DM room per pair of customers. Messages live on the homeserver;
PULL checks membership, mutes and the per-user send limit before relaying a send.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.exchange import service as exchange
from pull.exchange.errors import MarketNotFound as ExchangeMarketNotFound
from pull.identity import service as identity
from pull.kit.crypto import FieldCipher
from pull.kit.db import utcnow
from pull.messaging import repository as repo
from pull.messaging.errors import (
    AlreadyReported,
    CannotMessageSelf,
    EventNotFound,
    MarketNotFound,
    MessagingUnavailable,
    Muted,
    NotAMember,
    NotAnOwner,
    ReadOnlyRoom,
    ReportNotFound,
    RoomNotFound,
    UserNotFound,
)
from pull.messaging.matrix import Credentials, Homeserver, MatrixError
from pull.messaging.models import (
    MatrixAccount,
    MatrixRoom,
    MatrixServiceAccount,
    MessageReport,
)
from pull.messaging.schemas import MessageRead, RoomRead
from pull.rwa import service as rwa

BOT = "pull"
_servers: dict[tuple[str, int], Homeserver] = {}


def homeserver(settings: Settings) -> Homeserver:
    """The process's client of MATRIX_HOMESERVER_URL (one per event loop)."""
    if not settings.matrix_homeserver_url:
        raise MessagingUnavailable("Messaging is not configured (MATRIX_HOMESERVER_URL)")
    key = (settings.matrix_homeserver_url, id(asyncio.get_running_loop()))
    hs = _servers.get(key)
    if hs is None:
        hs = Homeserver(
            url=settings.matrix_homeserver_url,
            shared_secret=settings.matrix_registration_shared_secret,
        )
        _servers[key] = hs
    return hs


async def close_homeservers() -> None:
    loop = id(asyncio.get_running_loop())
    for key in [k for k in _servers if k[1] == loop]:
        await _servers.pop(key).aclose()


def _unavailable(exc: MatrixError) -> MessagingUnavailable:
    return MessagingUnavailable(details={"homeserver": exc.status or "unreachable"})


def localpart(user_id: uuid.UUID) -> str:
    return f"u{user_id.hex}"


def pull_user_of(matrix_user_id: str) -> uuid.UUID | None:
    """The PULL customer behind a Matrix id PULL provisioned (`@u<hex>:server`)."""
    local = matrix_user_id[1:].split(":", 1)[0] if matrix_user_id.startswith("@") else ""
    if len(local) == 33 and local.startswith("u"):
        try:
            return uuid.UUID(hex=local[1:])
        except ValueError:
            return None
    return None


class Messaging:
    """The messaging service for one request or activity: settings, the homeserver client
    and the field cipher for tokens."""

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
                raise _unavailable(exc) from exc
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
            raise _unavailable(exc) from exc
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
            raise _unavailable(exc) from exc
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
            raise _unavailable(exc) from exc
        await repo.add_member(session, room_id=room.id, user_id=user_id, at=utcnow())

    async def join_market(self, session: AsyncSession, user_id: uuid.UUID, ticker: str) -> RoomRead:
        try:
            market = await exchange.get_market(session=session, ticker=ticker)
        except ExchangeMarketNotFound as exc:
            raise MarketNotFound(details={"ticker": ticker}) from exc
        creds = await self.account(session, user_id)
        room = await self._room(
            session,
            kind="market",
            subject=market.ticker,
            name=f"{market.ticker}: {market.title}"[:200],
            creator=await self.bot(session),
            public=True,
            invite=[],
        )
        if not await repo.is_member(session, room_id=room.id, user_id=user_id):
            await self._join(session, room, user_id, creds)
        return await self._read(session, room, user_id)

    async def join_asset(
        self, session: AsyncSession, user_id: uuid.UUID, asset_id: uuid.UUID
    ) -> RoomRead:
        holdings = await rwa.ownership(session=session, user_id=user_id)
        held = next((h for h in holdings.items if h.asset_id == asset_id), None)
        if held is None:
            raise NotAnOwner()
        creds = await self.account(session, user_id)
        bot = await self.bot(session)
        room = await self._room(
            session,
            kind="asset",
            subject=str(asset_id),
            name=f"{held.symbol}: {held.title} (owners)"[:200],
            creator=bot,
            public=False,
            invite=[],
        )
        if not await repo.is_member(session, room_id=room.id, user_id=user_id):
            try:
                await self.hs.invite(bot, room_id=room.matrix_room_id, user_id=creds.user_id)
            except MatrixError as exc:
                raise _unavailable(exc) from exc
            await self._join(session, room, user_id, creds)
        return await self._read(session, room, user_id)

    async def open_dm(
        self, session: AsyncSession, user_id: uuid.UUID, other_id: uuid.UUID
    ) -> RoomRead:
        """The one DM room of two customers (created by the first who opens it; PULL joins
        the other, who may leave it)."""
        if other_id == user_id:
            raise CannotMessageSelf()
        if await identity.get_user(session=session, user_id=other_id) is None:
            raise UserNotFound()
        a, b = sorted([user_id, other_id])
        me = await self.account(session, user_id)
        other = await self.account(session, other_id)
        room = await self._room(
            session,
            kind="dm",
            subject=f"{a}:{b}",
            name="Direct message",
            creator=me,
            public=False,
            invite=[other.user_id],
            is_direct=True,
        )
        for uid, creds in ((user_id, me), (other_id, other)):
            if not await repo.is_member(session, room_id=room.id, user_id=uid):
                await self._join(session, room, uid, creds)
        return await self._read(session, room, user_id)

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
            raise _unavailable(exc) from exc

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
                while timeline.limited and nxt and len(_visible(events)) < limit:
                    # ask only for what is missing, so no event is fetched and then dropped
                    # (the returned token continues right after the last one shown)
                    backfilled = True
                    page = await self.hs.messages(
                        creds,
                        room_id=room.matrix_room_id,
                        start=nxt,
                        limit=limit - len(_visible(events)),
                    )
                    events.extend(page.events)
                    if not page.events or page.end is None:
                        nxt = None
                        break
                    nxt = page.end
        except MatrixError as exc:
            raise _unavailable(exc) from exc
        return [message_read(e) for e in _visible(events)], nxt, backfilled

    # --- Element and other clients ---------------------------------------------------------

    async def client_token(self, session: AsyncSession, user_id: uuid.UUID) -> tuple[str, str]:
        """A new access token (its own device) for the customer's Matrix account."""
        creds = await self.account(session, user_id)
        try:
            token = await self.hs.login_as(admin=await self.bot(session), user_id=creds.user_id)
        except MatrixError as exc:
            raise _unavailable(exc) from exc
        return creds.user_id, token

    # --- moderation ------------------------------------------------------------------------

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
            raise _unavailable(exc) from exc
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
            raise _unavailable(exc) from exc
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
                raise _unavailable(exc) from exc
        return until


def _visible(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == "m.room.message"]


def message_read(e: dict[str, Any]) -> MessageRead:
    content = e.get("content") or {}
    redacted = not content or "redacted_because" in (e.get("unsigned") or {})
    return MessageRead(
        event_id=str(e.get("event_id", "")),
        sender=str(e.get("sender", "")),
        user_id=pull_user_of(str(e.get("sender", ""))),
        type=str(e.get("type", "")),
        msgtype=content.get("msgtype"),
        body=None if redacted else content.get("body"),
        redacted=redacted,
        ts=int(e.get("origin_server_ts", 0)),
    )


def room_read(room: MatrixRoom, joined_at: dt.datetime) -> RoomRead:
    return RoomRead(
        id=room.id,
        matrix_room_id=room.matrix_room_id,
        kind=room.kind,
        subject=room.subject,
        name=room.name,
        joined_at=joined_at,
    )


async def list_rooms(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[tuple[MatrixRoom, dt.datetime]]:
    return await repo.rooms_of(session, user_id=user_id, before=before, limit=limit)


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


class AlertsRoomSender:
    """The notifications module's Matrix channel: a notice from the PULL bot in the
    customer's alerts room. The transaction id makes a retried send the same event."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send_alert(
        self, *, session: AsyncSession, user_id: uuid.UUID, txn_id: str, title: str, body: str
    ) -> str | None:
        if not self.settings.matrix_homeserver_url:
            return None
        svc = Messaging(self.settings)
        room = await svc.alerts_room(session, user_id)
        try:
            return await svc.hs.send_text(
                await svc.bot(session),
                room_id=room.matrix_room_id,
                body=f"{title}\n{body}",
                txn_id=txn_id,
                notice=True,
            )
        except MatrixError as exc:
            raise RuntimeError(f"Matrix alert not sent: {exc}") from exc
