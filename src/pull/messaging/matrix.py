"""The homeserver, seen from PULL: Synapse's admin API (shared-secret registration, log in as
a user) over httpx, and the client-server API through matrix-nio.

One aiohttp session per process is shared by the short-lived nio clients (one per call, as
the acting Matrix user), so a call costs a request, not a connection.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import nio
from prometheus_client import Counter

log = logging.getLogger("pull.messaging.matrix")

REQUESTS = Counter(
    "messaging_homeserver_requests",
    "Calls to the Matrix homeserver by outcome (ok, error: refused or unreachable)",
    ["outcome"],
)


class MatrixError(Exception):
    """The homeserver refused or failed a call."""

    def __init__(self, message: str, *, status: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class Credentials:
    user_id: str
    access_token: str
    device_id: str


@dataclass(frozen=True)
class Page:
    events: list[dict[str, Any]]
    end: str | None


@dataclass(frozen=True)
class RoomTimeline:
    events: list[dict[str, Any]]
    limited: bool
    prev_batch: str | None


def _check(resp: Any, what: str) -> Any:
    REQUESTS.labels("error" if isinstance(resp, nio.ErrorResponse) else "ok").inc()
    if isinstance(resp, nio.ErrorResponse):
        code = str(resp.status_code or "")
        retry = code in ("M_LIMIT_EXCEEDED", "M_UNKNOWN") or resp.transport_response is None
        raise MatrixError(f"{what} failed: {code} {resp.message}", status=code, retryable=retry)
    return resp


class Homeserver:
    def __init__(self, *, url: str, shared_secret: str, timeout: float = 15.0) -> None:
        self.url = url.rstrip("/")
        self.shared_secret = shared_secret
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self, creds: Credentials) -> nio.AsyncClient:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=100),
            )
        client = nio.AsyncClient(self.url, creds.user_id, device_id=creds.device_id)
        client.access_token = creds.access_token
        client.user_id = creds.user_id
        client.client_session = self._session
        return client

    # --- Synapse admin API -----------------------------------------------------------------

    async def register(self, *, localpart: str, password: str, admin: bool = False) -> Credentials:
        """Shared-secret registration (`/_synapse/admin/v1/register`)."""
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        async with httpx.AsyncClient(timeout=self.timeout) as c:
            try:
                nonce = (await c.get(endpoint)).json()["nonce"]
                mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
                mac.update(
                    b"\x00".join(
                        [
                            nonce.encode(),
                            localpart.encode(),
                            password.encode(),
                            b"admin" if admin else b"notadmin",
                        ]
                    )
                )
                r = await c.post(
                    endpoint,
                    json={
                        "nonce": nonce,
                        "username": localpart,
                        "password": password,
                        "admin": admin,
                        "mac": mac.hexdigest(),
                    },
                )
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                REQUESTS.labels("error").inc()
                raise MatrixError(f"register: {type(exc).__name__}", retryable=True) from exc
        REQUESTS.labels("ok" if r.status_code == 200 else "error").inc()
        if r.status_code != 200:
            code = _errcode(r)
            raise MatrixError(f"register: HTTP {r.status_code} {code}", status=code)
        body = r.json()
        return Credentials(body["user_id"], body["access_token"], body["device_id"])

    async def password_login(self, *, localpart: str, password: str) -> Credentials:
        async with httpx.AsyncClient(timeout=self.timeout) as c:
            try:
                r = await c.post(
                    f"{self.url}/_matrix/client/v3/login",
                    json={
                        "type": "m.login.password",
                        "identifier": {"type": "m.id.user", "user": localpart},
                        "password": password,
                        "device_id": "PULL",
                    },
                )
            except httpx.HTTPError as exc:
                REQUESTS.labels("error").inc()
                raise MatrixError(f"login: {type(exc).__name__}", retryable=True) from exc
        REQUESTS.labels("ok" if r.status_code == 200 else "error").inc()
        if r.status_code != 200:
            raise MatrixError(f"login: HTTP {r.status_code} {_errcode(r)}", status=_errcode(r))
        body = r.json()
        return Credentials(body["user_id"], body["access_token"], body["device_id"])

    async def login_as(self, *, admin: Credentials, user_id: str) -> str:
        """A new access token (a new device) for `user_id`, through the admin API."""
        async with httpx.AsyncClient(timeout=self.timeout) as c:
            try:
                r = await c.post(
                    f"{self.url}/_synapse/admin/v1/users/{user_id}/login",
                    headers={"Authorization": f"Bearer {admin.access_token}"},
                    json={},
                )
            except httpx.HTTPError as exc:
                REQUESTS.labels("error").inc()
                raise MatrixError(f"login: {type(exc).__name__}", retryable=True) from exc
        REQUESTS.labels("ok" if r.status_code == 200 else "error").inc()
        if r.status_code != 200:
            raise MatrixError(f"login: HTTP {r.status_code} {_errcode(r)}", status=_errcode(r))
        return str(r.json()["access_token"])

    async def reachable(self) -> bool:
        async with httpx.AsyncClient(timeout=2) as c:
            try:
                return (await c.get(f"{self.url}/_matrix/client/versions")).status_code == 200
            except httpx.HTTPError:
                return False

    # --- client-server API as a user (matrix-nio) ------------------------------------------

    async def create_room(
        self,
        creds: Credentials,
        *,
        name: str,
        public: bool,
        invite: Sequence[str] = (),
        is_direct: bool = False,
        read_only: bool = False,
    ) -> str:
        """A room; `public` rooms are joinable by anyone on the server, others by invite.
        `read_only`: only the creator (power 100) posts (the alerts room)."""
        power: dict[str, Any] | None = {"events_default": 50} if read_only else None
        resp = await self._client(creds).room_create(
            visibility=nio.RoomVisibility.private,
            name=name,
            preset=nio.RoomPreset.public_chat if public else nio.RoomPreset.private_chat,
            invite=list(invite),
            is_direct=is_direct,
            federate=False,
            power_level_override=power,
        )
        return str(_check(resp, "create room").room_id)

    async def invite(self, creds: Credentials, *, room_id: str, user_id: str) -> None:
        resp = await self._client(creds).room_invite(room_id, user_id)
        if isinstance(resp, nio.ErrorResponse) and "already in the room" in str(resp.message):
            return
        _check(resp, "invite")

    async def join(self, creds: Credentials, *, room_id: str) -> None:
        _check(await self._client(creds).join(room_id), "join")

    async def send_text(
        self, creds: Credentials, *, room_id: str, body: str, txn_id: str, notice: bool = False
    ) -> str:
        content = {"msgtype": "m.notice" if notice else "m.text", "body": body}
        resp = await self._client(creds).room_send(room_id, "m.room.message", content, tx_id=txn_id)
        return str(_check(resp, "send").event_id)

    async def redact(self, creds: Credentials, *, room_id: str, event_id: str, reason: str) -> str:
        resp = await self._client(creds).room_redact(room_id, event_id, reason=reason)
        return str(_check(resp, "redact").event_id)

    async def messages(
        self, creds: Credentials, *, room_id: str, start: str | None, limit: int
    ) -> Page:
        """`/messages` backwards from `start` (the newest when None)."""
        resp = _check(
            await self._client(creds).room_messages(room_id, start=start, limit=limit),
            "messages",
        )
        return Page(events=[e.source for e in resp.chunk], end=resp.end or None)

    async def sync_room(self, creds: Credentials, *, room_id: str, limit: int) -> RoomTimeline:
        """An initial sync of one room's timeline (Synapse caps it and says `limited`)."""
        flt = {
            "room": {
                "rooms": [room_id],
                "timeline": {"limit": limit},
                "state": {"lazy_load_members": True, "types": []},
                "ephemeral": {"types": []},
                "account_data": {"types": []},
            },
            "presence": {"types": []},
            "account_data": {"types": []},
        }
        resp = _check(await self._client(creds).sync(timeout=0, sync_filter=flt), "sync")
        joined = resp.rooms.join.get(room_id)
        if joined is None:
            return RoomTimeline([], False, None)
        timeline = joined.timeline
        return RoomTimeline(
            events=[e.source for e in timeline.events],
            limited=bool(timeline.limited),
            prev_batch=timeline.prev_batch,
        )

    async def event_sender(self, creds: Credentials, *, room_id: str, event_id: str) -> str | None:
        """The sender of an event the user can see, or None when there is no such event."""
        resp = await self._client(creds).room_context(room_id, event_id, limit=0)
        if isinstance(resp, nio.ErrorResponse):
            if str(resp.status_code) in ("M_NOT_FOUND", "M_FORBIDDEN"):
                return None
            _check(resp, "context")
        return str(resp.event.sender)

    async def set_power(
        self, creds: Credentials, *, room_id: str, user_id: str, level: int
    ) -> None:
        """Set one user's power level in a room the bot administers (-1: cannot post)."""
        client = self._client(creds)
        current = _check(
            await client.room_get_state_event(room_id, "m.room.power_levels"), "power levels"
        )
        content = dict(current.content)
        users = dict(content.get("users", {}))
        users[user_id] = level
        content["users"] = users
        _check(await client.room_put_state(room_id, "m.room.power_levels", content), "power")


def _errcode(r: httpx.Response) -> str:
    try:
        return str(r.json().get("errcode", ""))
    except ValueError:
        return ""
