"""The real FCM HTTP v1 and APNs clients against local fakes speaking each vendor's wire format.

FCM: the service account's RS256 JWT exchanged for an OAuth2 token at its `token_uri`, then
`POST /v1/projects/{id}/messages:send` with that bearer token; a 404 `UNREGISTERED` is a dead
token. APNs: HTTP/2 over TLS (the fake speaks only h2), a provider JWT (ES256, `kid`, `iss`
the team), `apns-topic` and `apns-push-type` headers; 410 `Unregistered` / 400
`BadDeviceToken` are dead tokens. A dead token is removed; the live one gets the message; the
channel is `sent` once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import ssl
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pull import devstack
from pull.identity.mailer import TableEmailSender
from pull.kit.db import session_scope
from pull.notifications import activities
from pull.notifications.delivery import Senders
from pull.notifications.push import ApnsPushSender, FcmPushSender
from pull.notifications.service import Notice, notify
from tests.kyc.conftest import serve
from tests.notifications.conftest import NotifyEnv

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _pem_private(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


# --- FCM --------------------------------------------------------------------------------------


class FakeFcm:
    """Google's token endpoint and FCM HTTP v1 `messages:send`, checking what Google checks."""

    ACCESS = "ya29.fake-access-token"

    def __init__(self, public_key: Any, client_email: str, project: str) -> None:
        self.public_key, self.client_email, self.project = public_key, client_email, project
        self.url = ""
        self.token_requests = 0
        self.sent: list[dict[str, Any]] = []

    async def token(self, request: Request) -> JSONResponse:
        form = await request.form()
        if form.get("grant_type") != GRANT:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        try:
            claims = jwt.decode(
                str(form.get("assertion")),
                self.public_key,
                algorithms=["RS256"],
                audience=f"{self.url}/token",
                issuer=self.client_email,
            )
        except jwt.PyJWTError as exc:
            return JSONResponse({"error": "invalid_grant", "detail": str(exc)}, status_code=400)
        assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
        assert claims["exp"] - claims["iat"] <= 3600
        self.token_requests += 1
        return JSONResponse(
            {"access_token": self.ACCESS, "expires_in": 3599, "token_type": "Bearer"}
        )

    async def send(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {self.ACCESS}":
            return JSONResponse(
                {"error": {"code": 401, "status": "UNAUTHENTICATED"}}, status_code=401
            )
        assert request.path_params["project"] == self.project
        message = (await request.json())["message"]
        if message["token"].startswith("dead-"):
            return JSONResponse(
                {
                    "error": {
                        "code": 404,
                        "message": "Requested entity was not found.",
                        "status": "NOT_FOUND",
                        "details": [
                            {
                                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                "errorCode": "UNREGISTERED",
                            }
                        ],
                    }
                },
                status_code=404,
            )
        self.sent.append(message)
        return JSONResponse({"name": f"projects/{self.project}/messages/{len(self.sent)}"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self.token, methods=["POST"]),
                Route("/v1/projects/{project}/messages:send", self.send, methods=["POST"]),
            ]
        )


# --- APNs -------------------------------------------------------------------------------------

Handler = Callable[[dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


class FakeApns:
    """An HTTP/2-only TLS server (ALPN h2) answering `POST /3/device/<token>` like APNs."""

    def __init__(self, public_key: Any, key_id: str, team_id: str, topic: str) -> None:
        self.public_key, self.key_id, self.team_id, self.topic = public_key, key_id, team_id, topic
        self.sent: list[tuple[dict[str, str], dict[str, Any]]] = []

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        assert headers[":method"] == "POST"
        token = headers[":path"].removeprefix("/3/device/")
        auth = headers.get("authorization", "")
        try:
            provider = auth.removeprefix("bearer ")
            header = jwt.get_unverified_header(provider)
            claims = jwt.decode(provider, self.public_key, algorithms=["ES256"])
        except jwt.PyJWTError:
            return 403, {}, json.dumps({"reason": "InvalidProviderToken"}).encode()
        if header.get("kid") != self.key_id or claims.get("iss") != self.team_id:
            return 403, {}, json.dumps({"reason": "InvalidProviderToken"}).encode()
        if headers.get("apns-topic") != self.topic:
            return 400, {}, json.dumps({"reason": "DeviceTokenNotForTopic"}).encode()
        if headers.get("apns-push-type") != "alert":
            return 400, {}, json.dumps({"reason": "InvalidPushType"}).encode()
        if token.startswith("gone-"):
            return 410, {}, json.dumps({"reason": "Unregistered", "timestamp": 1}).encode()
        if token.startswith("bad-"):
            return 400, {}, json.dumps({"reason": "BadDeviceToken"}).encode()
        self.sent.append((headers, json.loads(body)))
        return 200, {"apns-id": str(uuid.uuid4()).upper()}, b""


@contextlib.asynccontextmanager
async def h2_server(handler: Handler) -> AsyncIterator[tuple[str, ssl.SSLContext]]:
    """TLS (a fresh self-signed certificate for 127.0.0.1) offering only h2 by ALPN; yields
    the base URL and a client context trusting that certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    tmp = Path(tempfile.mkdtemp(prefix="pull-apns-"))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_text(_pem_private(key))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    server_ctx.set_alpn_protocols(["h2"])
    client_ctx = ssl.create_default_context(cafile=str(tmp / "cert.pem"))

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        try:
            while data := await reader.read(65535):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = (
                            {str(k): str(v) for k, v in event.headers or []},
                            bytearray(),
                        )
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][1].extend(event.data or b"")
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id)
                        status, extra, payload = handler(headers, bytes(body))
                        conn.send_headers(
                            event.stream_id,
                            [(":status", str(status)), *extra.items()]
                            + ([("content-type", "application/json")] if payload else []),
                            end_stream=not payload,
                        )
                        if payload:
                            conn.send_data(event.stream_id, payload, end_stream=True)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                writer.write(conn.data_to_send())
                await writer.drain()
        finally:
            writer.close()

    port = devstack.free_port()
    server = await asyncio.start_server(connection, "127.0.0.1", port, ssl=server_ctx)
    try:
        yield f"https://127.0.0.1:{port}", client_ctx
    finally:
        server.close()
        await server.wait_closed()


# --- through PULL -----------------------------------------------------------------------------


async def _register(nenv: NotifyEnv, user: Any, platform: str, token: str) -> str:
    r = await nenv.http.post(
        "/api/v1/notifications/devices",
        json={"platform": platform, "token": token},
        headers=user.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _deposit_notice(nenv: NotifyEnv, user: Any) -> str:
    """A `deposit` notification (push is on by default for it), as a producer makes one."""
    async with session_scope(nenv.maker) as s:
        ids = await notify(
            session=s,
            notices=[
                Notice(
                    user_id=user.id,
                    type="deposit",
                    title="Deposit completed",
                    body="Your deposit of $25.00 is available.",
                    dedupe_key=f"test:{uuid.uuid4()}",
                )
            ],
        )
    return str(ids[0])


async def _devices(nenv: NotifyEnv, user: Any) -> list[str]:
    """The user's registered device ids (the API never shows a token)."""
    r = await nenv.http.get("/api/v1/notifications/devices", headers=user.headers)
    assert r.status_code == 200, r.text
    return sorted(d["id"] for d in r.json()["items"])


@contextlib.contextmanager
def _senders(push: dict[str, Any]) -> Any:
    activities.set_senders(
        Senders(email=TableEmailSender(), push=push, matrix=None, app_url="http://pull.test")
    )
    try:
        yield
    finally:
        activities.set_senders(None)


async def test_fcm_http_v1_client_against_a_fake_google(nenv: NotifyEnv, user_factory: Any) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "pull-push@pull-test.iam.gserviceaccount.com"
    fake = FakeFcm(key.public_key(), email, "pull-test")
    port = devstack.free_port()
    async with serve(fake.app(), port) as url:
        fake.url = url
        sender = FcmPushSender(
            service_account={
                "type": "service_account",
                "project_id": "pull-test",
                "private_key_id": "k1",
                "private_key": _pem_private(key),
                "client_email": email,
                "token_uri": f"{url}/token",
            },
            base_url=url,
        )
        user = await user_factory()
        live, dead = f"live-{uuid.uuid4().hex}", f"dead-{uuid.uuid4().hex}"
        live_id = await _register(nenv, user, "fcm", live)
        await _register(nenv, user, "fcm", dead)
        with _senders({"fcm": sender}):
            nid = await _deposit_notice(nenv, user)
            async with nenv.worker():
                statuses = await nenv.wait_delivered(nid, user)
            second = await _deposit_notice(nenv, user)
            async with nenv.worker():
                await nenv.wait_delivered(second, user)
    assert statuses["push"] == "sent"
    assert await _devices(nenv, user) == [live_id]  # UNREGISTERED removed the dead one
    assert [m["token"] for m in fake.sent] == [live, live]
    first = fake.sent[0]
    assert first["notification"] == {
        "title": "Deposit completed",
        "body": "Your deposit of $25.00 is available.",
    }
    assert first["android"]["collapse_key"] == nid
    assert first["data"] == {"notification_id": nid, "type": "deposit"}
    assert fake.token_requests == 1  # the access token is reused until it nears expiry


async def test_apns_client_against_a_fake_http2_apns(nenv: NotifyEnv, user_factory: Any) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    fake = FakeApns(key.public_key(), "KEY1234567", "TEAM123456", "com.pull.app")
    async with h2_server(fake.handle) as (url, ca):
        sender = ApnsPushSender(
            key_pem=_pem_private(key),
            key_id="KEY1234567",
            team_id="TEAM123456",
            topic="com.pull.app",
            base_url=url,
            verify=ca,
        )
        user = await user_factory()
        live = f"live{uuid.uuid4().hex}"
        gone, bad = f"gone-{uuid.uuid4().hex}", f"bad-{uuid.uuid4().hex}"
        live_id = await _register(nenv, user, "apns", live)
        for token in (gone, bad):
            await _register(nenv, user, "apns", token)
        with _senders({"apns": sender}):
            nid = await _deposit_notice(nenv, user)
            async with nenv.worker():
                statuses = await nenv.wait_delivered(nid, user)
    assert statuses["push"] == "sent"
    assert await _devices(nenv, user) == [live_id]  # Unregistered, BadDeviceToken: removed
    assert len(fake.sent) == 1
    headers, body = fake.sent[0]
    assert headers[":path"] == f"/3/device/{live}"
    assert headers["apns-collapse-id"] == nid
    assert body["aps"]["alert"] == {
        "title": "Deposit completed",
        "body": "Your deposit of $25.00 is available.",
    }
    assert body["notification_id"] == nid
