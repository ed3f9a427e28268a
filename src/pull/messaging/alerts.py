"""The notifications module's Matrix channel (the customer's "PULL alerts" room)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.messaging.matrix import MatrixError
from pull.messaging.service import Messaging


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
