"""Nylas' sandbox: a mailbox served from the dataset in data/mailbox.jsonl, with webhooks.

The default in development and tests. Like Nylas it hands out a hosted-auth URL (served by our
own API under /sandbox/nylas), exchanges the code for a grant, pages messages newest-first,
and after connecting delivers the mailbox's "live" messages as `message.created` webhooks,
signed with X-Nylas-Signature, at least once (one of them twice, as Nylas may), the one over
1 MB as `message.created.truncated`. Writes (mark read, archive, send) answer like Nylas and
then arrive back as `message.updated` / `message.created` webhooks. Magic login hint: an
address starting with `revoked` gets a grant whose every call fails as a revoked grant does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import logging
import secrets
import time
from functools import lru_cache
from importlib.resources import files
from typing import Any
from urllib.parse import urlencode

import httpx

from pull.email.providers import wire
from pull.email.providers.base import Grant, GrantRevoked, MessagePage, NylasMessage

log = logging.getLogger("pull.email.sandbox")

DEFAULT_EMAIL = "alex@sandbox.pull.test"
APPLICATION_ID = "sandbox-application"
_DELIVERIES: set[asyncio.Task[None]] = set()


@lru_cache(maxsize=1)
def mailbox() -> tuple[dict[str, Any], ...]:
    text = files("pull.email").joinpath("data/mailbox.jsonl").read_text()
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


def _large_body(base: str) -> str:
    filler = " ".join(["This quarterly report appendix repeats for volume."] * 40)
    blocks = [f"<p>{html.escape(filler)} ({i})</p>" for i in range(600)]
    return f"<div>{html.escape(base)}</div>" + "".join(blocks)


def to_nylas(row: dict[str, Any], *, grant_id: str, email: str) -> NylasMessage:
    text = str(row["body"])
    body = (
        _large_body(text)
        if row.get("large")
        else ("<div>" + html.escape(text).replace("\n", "<br>") + "</div>")
    )
    return {
        "id": row["id"],
        "object": "message",
        "grant_id": grant_id,
        "thread_id": row["thread_id"],
        "subject": row["subject"],
        "from": [{"name": row["from_name"], "email": row["from_email"]}],
        "to": [{"name": "", "email": email}],
        "cc": [],
        "bcc": [],
        "reply_to": [],
        "date": row["date"],
        "unread": row["unread"],
        "starred": row["starred"],
        "folders": ["INBOX"],
        "snippet": text[:100],
        "body": body,
        "attachments": [],
    }


def _grant_of(code: str) -> Grant:
    try:
        _, encoded, _ = code.split("_", 2)
        email = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise GrantRevoked("invalid sandbox code") from exc
    digest = hashlib.sha256(code.encode()).hexdigest()[:24]
    prefix = "sbx-revoked-" if email.startswith("revoked") else "sbx-"
    return Grant(grant_id=prefix + digest, email=email, provider="sandbox")


class NylasSandbox:
    name = "sandbox"

    def __init__(
        self,
        *,
        api_base_url: str,
        callback_uri: str,
        webhook_secret: str,
        delay: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_base_url = api_base_url.rstrip("/")
        self.callback_uri = callback_uri
        self.webhook_secret = webhook_secret
        self.delay = delay
        self.transport = transport
        self._emails: dict[str, str] = {}

    # --- auth ---------------------------------------------------------------------------------

    def auth_url(self, *, state: str, login_hint: str | None) -> str:
        query = {
            "client_id": APPLICATION_ID,
            "redirect_uri": self.callback_uri,
            "response_type": "code",
            "access_type": "online",
            "provider": "google",
            "state": state,
        }
        if login_hint:
            query["login_hint"] = login_hint
        return f"{self.api_base_url}/sandbox/nylas/v3/connect/auth?{urlencode(query)}"

    @staticmethod
    def issue_code(login_hint: str | None) -> str:
        """What the sandbox's consent screen hands back to the redirect URI."""
        email = (login_hint or DEFAULT_EMAIL).strip() or DEFAULT_EMAIL
        encoded = base64.urlsafe_b64encode(email.encode()).decode().rstrip("=")
        return f"sbx_{encoded}_{secrets.token_urlsafe(12)}"

    async def exchange_code(self, *, code: str) -> Grant:
        grant = _grant_of(code)
        self._emails[grant.grant_id] = grant.email
        if not grant.grant_id.startswith("sbx-revoked-"):
            self._deliver_live(grant)
        return grant

    # --- data ---------------------------------------------------------------------------------

    def _check(self, grant_id: str) -> None:
        if not grant_id.startswith("sbx-") or grant_id.startswith("sbx-revoked-"):
            raise GrantRevoked(grant_id)

    def _email(self, grant_id: str) -> str:
        return self._emails.get(grant_id, DEFAULT_EMAIL)

    async def list_messages(
        self, *, grant_id: str, limit: int, page_token: str | None
    ) -> MessagePage:
        self._check(grant_id)
        rows = [r for r in reversed(mailbox()) if not r["live"]]  # newest first
        start = int(page_token) if page_token and page_token.isdigit() else 0
        page = rows[start : start + min(limit, 200)]
        nxt = start + len(page)
        email = self._email(grant_id)
        return MessagePage(
            messages=[to_nylas(r, grant_id=grant_id, email=email) for r in page],
            next_cursor=str(nxt) if nxt < len(rows) else None,
        )

    async def get_message(self, *, grant_id: str, message_id: str) -> NylasMessage:
        self._check(grant_id)
        for row in mailbox():
            if row["id"] == message_id:
                return to_nylas(row, grant_id=grant_id, email=self._email(grant_id))
        raise KeyError(message_id)

    async def update_message(
        self,
        *,
        grant_id: str,
        message_id: str,
        unread: bool | None = None,
        folders: list[str] | None = None,
    ) -> NylasMessage:
        self._check(grant_id)
        try:
            obj = await self.get_message(grant_id=grant_id, message_id=message_id)
        except KeyError:
            obj = {"id": message_id, "object": "message", "grant_id": grant_id}
        if unread is not None:
            obj["unread"] = unread
        if folders is not None:
            obj["folders"] = folders
        self._schedule([wire.envelope("message.updated", obj, application_id=APPLICATION_ID)])
        return obj

    async def send_message(
        self,
        *,
        grant_id: str,
        to: list[dict[str, str]],
        subject: str,
        body: str,
        reply_to_message_id: str | None,
    ) -> NylasMessage:
        self._check(grant_id)
        thread_id = f"thr_sent_{secrets.token_hex(6)}"
        if reply_to_message_id:
            for row in mailbox():
                if row["id"] == reply_to_message_id:
                    thread_id = row["thread_id"]
        obj: NylasMessage = {
            "id": f"sent_{secrets.token_hex(8)}",
            "object": "message",
            "grant_id": grant_id,
            "thread_id": thread_id,
            "subject": subject,
            "from": [{"name": "", "email": self._email(grant_id)}],
            "to": to,
            "date": int(time.time()),
            "unread": False,
            "starred": False,
            "folders": ["SENT"],
            "snippet": body[:100],
            "body": body,
            "reply_to_message_id": reply_to_message_id,
        }
        self._schedule([wire.envelope("message.created", obj, application_id=APPLICATION_ID)])
        return obj

    async def destroy_grant(self, *, grant_id: str) -> None:
        self._emails.pop(grant_id, None)

    # --- webhooks -----------------------------------------------------------------------------

    def _deliver_live(self, grant: Grant) -> None:
        events = [
            wire.envelope(
                "message.created",
                to_nylas(r, grant_id=grant.grant_id, email=grant.email),
                application_id=APPLICATION_ID,
            )
            for r in mailbox()
            if r["live"]
        ]
        if events:
            events.insert(2, events[0])  # at least once: the same notification twice
        self._schedule(events)

    def _schedule(self, events: list[dict[str, Any]]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._deliver(events))
        _DELIVERIES.add(task)
        task.add_done_callback(_DELIVERIES.discard)

    async def _deliver(self, events: list[dict[str, Any]]) -> None:
        await asyncio.sleep(self.delay)
        url = f"{self.api_base_url}/webhooks/nylas"
        async with httpx.AsyncClient(transport=self.transport, timeout=10) as client:
            for event in events:
                body = json.dumps(event, separators=(",", ":")).encode()
                headers = {
                    "Content-Type": "application/json",
                    wire.SIGNATURE_HEADER: wire.sign(self.webhook_secret, body),
                }
                for attempt in range(8):  # Nylas retries until a 2xx arrives
                    try:
                        r = await client.post(url, content=body, headers=headers)
                        if r.status_code < 300:
                            break
                        log.info("sandbox webhook refused", extra={"status": r.status_code})
                    except httpx.HTTPError as exc:
                        log.info("sandbox webhook failed", extra={"error": type(exc).__name__})
                    await asyncio.sleep(min(0.5 * 2**attempt, 5.0))
