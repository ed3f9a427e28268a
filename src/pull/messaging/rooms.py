"""Joining PULL's rooms: a market's public room, an asset's owners-only room, DMs."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import service as exchange
from pull.exchange.errors import MarketNotFound as ExchangeMarketNotFound
from pull.identity import service as identity
from pull.messaging import repository as repo
from pull.messaging.accounts import MessagingCore
from pull.messaging.connection import unavailable
from pull.messaging.errors import CannotMessageSelf, MarketNotFound, NotAnOwner, UserNotFound
from pull.messaging.matrix import MatrixError
from pull.messaging.schemas import RoomRead
from pull.rwa import service as rwa


class Rooms(MessagingCore):
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
                raise unavailable(exc) from exc
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
