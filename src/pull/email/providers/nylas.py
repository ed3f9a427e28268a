"""The real Nylas v3 client, through Nylas' official Python SDK (`nylas`).

The SDK is synchronous (requests), so each call runs in a worker thread. A 401, 403 or 404 on
a grant's data means the grant is gone or revoked (GrantRevoked); other failures are retryable
(ProviderError). Tested against tests/email/fake_nylas.py, a local server speaking v3's wire
format.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from nylas import Client
from nylas.models.errors import NylasApiError, NylasOAuthError

from pull.email.providers.base import (
    Grant,
    GrantRevoked,
    MessagePage,
    NylasMessage,
    ProviderError,
)

R = TypeVar("R")
REVOKED_STATUSES = {401, 403, 404}


def _message(obj: Any) -> NylasMessage:
    data: NylasMessage = obj.to_dict()
    return data


class NylasProvider:
    name = "nylas"

    def __init__(self, *, api_key: str, api_uri: str, client_id: str, callback_uri: str) -> None:
        self.client = Client(api_key=api_key, api_uri=api_uri, timeout=30)
        self.client_id = client_id
        self.callback_uri = callback_uri

    async def _call(self, fn: Callable[[], R]) -> R:
        try:
            return await asyncio.to_thread(fn)
        except NylasApiError as exc:
            if exc.status_code in REVOKED_STATUSES:
                raise GrantRevoked(exc.type) from exc
            raise ProviderError(f"nylas {exc.status_code} {exc.type}") from exc
        except NylasOAuthError as exc:
            raise GrantRevoked(exc.error) from exc
        except Exception as exc:  # network and decoding errors: let Temporal retry
            raise ProviderError(type(exc).__name__) from exc

    def auth_url(self, *, state: str, login_hint: str | None) -> str:
        config: dict[str, Any] = {
            "client_id": self.client_id,
            "redirect_uri": self.callback_uri,
            "state": state,
            "access_type": "online",
        }
        if login_hint:
            config["login_hint"] = login_hint
        url: str = self.client.auth.url_for_oauth2(config)
        return url

    async def exchange_code(self, *, code: str) -> Grant:
        request: Any = {
            "client_id": self.client_id,
            "redirect_uri": self.callback_uri,
            "code": code,
        }
        resp = await self._call(lambda: self.client.auth.exchange_code_for_token(request))
        provider = getattr(resp.provider, "value", resp.provider) or "nylas"
        return Grant(grant_id=resp.grant_id, email=resp.email or "", provider=str(provider))

    async def list_messages(
        self, *, grant_id: str, limit: int, page_token: str | None
    ) -> MessagePage:
        params: Any = {"limit": min(limit, 200)}
        if page_token:
            params["page_token"] = page_token
        resp = await self._call(lambda: self.client.messages.list(grant_id, query_params=params))
        return MessagePage(
            messages=[_message(m) for m in resp.data], next_cursor=resp.next_cursor or None
        )

    async def get_message(self, *, grant_id: str, message_id: str) -> NylasMessage:
        resp = await self._call(lambda: self.client.messages.find(grant_id, message_id))
        return _message(resp.data)

    async def update_message(
        self,
        *,
        grant_id: str,
        message_id: str,
        unread: bool | None = None,
        folders: list[str] | None = None,
    ) -> NylasMessage:
        body: Any = {}
        if unread is not None:
            body["unread"] = unread
        if folders is not None:
            body["folders"] = folders
        resp = await self._call(
            lambda: self.client.messages.update(grant_id, message_id, request_body=body)
        )
        return _message(resp.data)

    async def send_message(
        self,
        *,
        grant_id: str,
        to: list[dict[str, str]],
        subject: str,
        body: str,
        reply_to_message_id: str | None,
    ) -> NylasMessage:
        request: Any = {"to": to, "subject": subject, "body": body}
        if reply_to_message_id:
            request["reply_to_message_id"] = reply_to_message_id
        resp = await self._call(lambda: self.client.messages.send(grant_id, request_body=request))
        return _message(resp.data)

    async def destroy_grant(self, *, grant_id: str) -> None:
        await self._call(lambda: self.client.grants.destroy(grant_id))
