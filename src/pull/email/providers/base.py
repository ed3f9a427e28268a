"""The mail provider Protocol (Nylas v3's shapes) and what every implementation raises.

Messages travel as Nylas v3 message objects (dicts: `id`, `grant_id`, `thread_id`, `subject`,
`from`, `to`, `date`, `unread`, `starred`, `folders`, `snippet`, `body`), the same shape a
webhook's `data.object` carries, so one ingestion path serves the backfill and the webhooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

NylasMessage = dict[str, Any]


class GrantRevoked(Exception):
    """The mailbox owner revoked access (Nylas answers 401/403/404 for the grant)."""


class ProviderError(Exception):
    """The provider failed for another reason (retryable)."""


@dataclass(frozen=True)
class Grant:
    grant_id: str
    email: str
    provider: str


@dataclass(frozen=True)
class MessagePage:
    messages: list[NylasMessage]
    next_cursor: str | None


class MailProvider(Protocol):
    name: str

    def auth_url(self, *, state: str, login_hint: str | None) -> str: ...

    async def exchange_code(self, *, code: str) -> Grant: ...

    async def list_messages(
        self, *, grant_id: str, limit: int, page_token: str | None
    ) -> MessagePage: ...

    async def get_message(self, *, grant_id: str, message_id: str) -> NylasMessage: ...

    async def update_message(
        self,
        *,
        grant_id: str,
        message_id: str,
        unread: bool | None = None,
        folders: list[str] | None = None,
    ) -> NylasMessage: ...

    async def send_message(
        self,
        *,
        grant_id: str,
        to: list[dict[str, str]],
        subject: str,
        body: str,
        reply_to_message_id: str | None,
    ) -> NylasMessage: ...

    async def destroy_grant(self, *, grant_id: str) -> None: ...
