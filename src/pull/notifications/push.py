"""Mobile push behind one protocol: FCM HTTP v1 and APNs (token auth), each with a sandbox.

A delivery is keyed by the notification id (FCM `collapse_key` / APNs `apns-collapse-id`), so
a retry after a lost acknowledgement replaces the first copy on the device instead of
showing a second one. The sandbox (development and test) writes what it would send to the
`notification_push_sandbox` table in the caller's transaction.
"""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from pull.notifications import repository as repo
from pull.notifications.models import SandboxPush


@dataclass(frozen=True)
class PushMessage:
    token: str
    title: str
    body: str
    collapse_id: str
    data: dict[str, str]


class PushRejected(Exception):
    """The provider refused for good (bad or unregistered token): do not retry."""


class PushUnavailable(Exception):
    """The provider failed for now (5xx, 429, network): retry."""


class PushSender(Protocol):
    platform: str

    async def send(self, *, session: AsyncSession, message: PushMessage) -> str: ...


class SandboxPushSender:
    def __init__(self, platform: str) -> None:
        self.platform = platform

    async def send(self, *, session: AsyncSession, message: PushMessage) -> str:
        payload = (
            fcm_body(message) if self.platform == "fcm" else {"aps": apns_body(message)["aps"]}
        )
        repo.add_sandbox_push(
            session,
            SandboxPush(
                platform=self.platform,
                token=message.token,
                collapse_id=message.collapse_id,
                payload=payload,
            ),
        )
        return f"sandbox:{message.collapse_id}"


def fcm_body(message: PushMessage) -> dict[str, Any]:
    """The `messages:send` request body (FCM HTTP v1)."""
    return {
        "message": {
            "token": message.token,
            "notification": {"title": message.title, "body": message.body},
            "data": message.data,
            "android": {"collapse_key": message.collapse_id},
            "apns": {"headers": {"apns-collapse-id": message.collapse_id[:64]}},
        }
    }


def apns_body(message: PushMessage) -> dict[str, Any]:
    return {"aps": {"alert": {"title": message.title, "body": message.body}}, **message.data}


class FcmPushSender:
    """FCM HTTP v1 with a service account: an RS256 JWT exchanged for an OAuth2 token
    (cached until shortly before it expires), then `POST /v1/projects/{id}/messages:send`."""

    platform = "fcm"
    SCOPE = "https://www.googleapis.com/auth/firebase.messaging"

    def __init__(
        self,
        *,
        service_account: dict[str, Any],
        base_url: str = "https://fcm.googleapis.com",
        timeout: float = 10.0,
    ) -> None:
        self.account = service_account
        self.project = str(service_account["project_id"])
        self.token_uri = str(
            service_account.get("token_uri", "https://oauth2.googleapis.com/token")
        )
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token: tuple[str, float] | None = None

    async def _access_token(self, client: httpx.AsyncClient) -> str:
        if self._token and self._token[1] > time.time() + 60:
            return self._token[0]
        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": self.account["client_email"],
                "scope": self.SCOPE,
                "aud": self.token_uri,
                "iat": now,
                "exp": now + 3600,
            },
            self.account["private_key"],
            algorithm="RS256",
            headers={"kid": self.account.get("private_key_id", "")},
        )
        r = await client.post(
            self.token_uri,
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            },
        )
        if r.status_code != 200:
            raise PushUnavailable(f"FCM token exchange failed: HTTP {r.status_code}")
        body = r.json()
        self._token = (str(body["access_token"]), now + float(body.get("expires_in", 3600)))
        return self._token[0]

    async def send(self, *, session: AsyncSession, message: PushMessage) -> str:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            try:
                token = await self._access_token(client)
                r = await client.post(
                    f"{self.base_url}/v1/projects/{self.project}/messages:send",
                    headers={"Authorization": f"Bearer {token}"},
                    json=fcm_body(message),
                )
            except httpx.HTTPError as exc:
                raise PushUnavailable(f"FCM unreachable: {type(exc).__name__}") from exc
        if r.status_code == 200:
            return str(r.json().get("name", ""))
        status = _fcm_status(r)
        if r.status_code in (400, 403, 404) and status in (
            "INVALID_ARGUMENT",
            "UNREGISTERED",
            "SENDER_ID_MISMATCH",
            "NOT_FOUND",
        ):
            raise PushRejected(f"FCM {status}")
        if r.status_code == 401:
            self._token = None
        raise PushUnavailable(f"FCM HTTP {r.status_code} {status}")


def _fcm_status(r: httpx.Response) -> str:
    try:
        err = r.json().get("error", {})
    except (ValueError, json.JSONDecodeError):
        return ""
    for detail in err.get("details", []) or []:
        code = detail.get("errorCode")
        if code:
            return str(code)
    return str(err.get("status", ""))


class ApnsPushSender:
    """APNs over HTTP/2 with a provider token (ES256 JWT, renewed every 50 minutes)."""

    platform = "apns"

    def __init__(
        self,
        *,
        key_pem: str,
        key_id: str,
        team_id: str,
        topic: str,
        base_url: str = "https://api.push.apple.com",
        timeout: float = 10.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.verify = verify  # the system's CAs; tests pass their fake's
        self.key_pem = key_pem
        self.key_id = key_id
        self.team_id = team_id
        self.topic = topic
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._jwt: tuple[str, float] | None = None

    def _provider_token(self) -> str:
        now = time.time()
        if self._jwt is None or now - self._jwt[1] > 3000:
            token = jwt.encode(
                {"iss": self.team_id, "iat": int(now)},
                self.key_pem,
                algorithm="ES256",
                headers={"kid": self.key_id},
            )
            self._jwt = (token, now)
        return self._jwt[0]

    async def send(self, *, session: AsyncSession, message: PushMessage) -> str:
        headers = {
            "authorization": f"bearer {self._provider_token()}",
            "apns-topic": self.topic,
            "apns-push-type": "alert",
            "apns-collapse-id": message.collapse_id[:64],
        }
        async with httpx.AsyncClient(
            http2=True, timeout=self.timeout, verify=self.verify
        ) as client:
            try:
                r = await client.post(
                    f"{self.base_url}/3/device/{message.token}",
                    headers=headers,
                    json=apns_body(message),
                )
            except httpx.HTTPError as exc:
                raise PushUnavailable(f"APNs unreachable: {type(exc).__name__}") from exc
        if r.status_code == 200:
            return str(r.headers.get("apns-id", ""))
        try:
            reason = str(r.json().get("reason", ""))
        except ValueError:
            reason = ""
        if r.status_code in (400, 410) and reason in (
            "BadDeviceToken",
            "Unregistered",
            "DeviceTokenNotForTopic",
            "BadCollapseId",
        ):
            raise PushRejected(f"APNs {reason}")
        if r.status_code == 403 and reason == "ExpiredProviderToken":
            self._jwt = None
        raise PushUnavailable(f"APNs HTTP {r.status_code} {reason}")
