"""Mail delivery: the SMTP sender against a real SMTP server (aiosmtpd), and the dev table."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull import devstack
from pull.app import create_app
from pull.config import Environment
from pull.identity import mailer
from tests.conftest import AppRunner, Services, make_settings
from tests.identity.conftest import PASSWORD, client_at, mails_to, token_in


@dataclass
class Inbox:
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        self.messages.append(msg)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and data.password == b"smtp-secret":
            self.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox(port=devstack.free_port())
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        authenticator=box.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


async def test_smtp_sender_delivers_registration_mail(
    services: Services, inbox: Inbox, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    settings = make_settings(
        services,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=inbox.port,
        SMTP_STARTTLS=False,
        SMTP_USERNAME="mailer",
        SMTP_PASSWORD="smtp-secret",
        SMTP_FROM="PULL <no-reply@pull.test>",
        APP_URL="https://app.pull.test",
    )
    app = create_app(settings)
    async with AppRunner(app), client_at(app) as c:
        r = await c.post(
            "/api/auth/register", json={"email": "m@example.com", "password": PASSWORD}
        )
        assert r.status_code == 201
        assert len(inbox.messages) == 1
        msg = inbox.messages[0]
        assert msg["To"] == "m@example.com"
        assert msg["From"] == "PULL <no-reply@pull.test>"
        assert msg["Subject"] == "Confirm your email address"
        body = msg.get_content()
        assert "https://app.pull.test/verify-email?token=" in body
        assert inbox.logins == ["mailer"]
        # Nothing went to the development table.
        assert await mails_to(sessionmaker, "m@example.com") == []
        # The token in the real mail verifies the address.
        token = body.split("token=", 1)[1].split()[0]
        ok = await c.post("/api/auth/verify-email", json={"token": token})
        assert ok.status_code == 200, ok.text


async def test_smtp_sender_fails_loudly_on_bad_credentials(inbox: Inbox) -> None:
    import smtplib

    sender = mailer.SmtpEmailSender(
        host="127.0.0.1",
        port=inbox.port,
        sender="x@pull.test",
        username="mailer",
        password="wrong",
        starttls=False,
    )
    with pytest.raises(smtplib.SMTPAuthenticationError):
        await sender.send(
            session=None,  # type: ignore[arg-type]  # SMTP needs no database session
            email=mailer.Email(to="a@example.com", subject="s", body="b", kind="test"),
        )
    assert inbox.messages == []


async def test_default_sender_writes_the_table(
    services: Services, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    settings = make_settings(services)
    assert isinstance(mailer.sender_for(settings), mailer.TableEmailSender)
    app = create_app(settings)
    async with AppRunner(app), client_at(app) as c:
        await c.post("/api/auth/register", json={"email": "t@example.com", "password": PASSWORD})
    mails = await mails_to(sessionmaker, "t@example.com")
    assert [m.kind for m in mails] == ["verify_email"]
    assert token_in(mails[0])


def test_sender_choice(services: Services) -> None:
    dev = make_settings(services, ENVIRONMENT=Environment.development)
    sender = mailer.sender_for(dev)
    assert isinstance(sender, mailer.TableEmailSender) and sender.echo  # `pull dev` logs mail
    assert not mailer.sender_for(make_settings(services)).echo  # type: ignore[attr-defined]
    prod = make_settings(services, ENVIRONMENT=Environment.production)
    # Deployed without SMTP: mail is dropped with a warning, never parked with its tokens.
    assert isinstance(mailer.sender_for(prod), mailer.DisabledEmailSender)
    smtp = make_settings(services, ENVIRONMENT=Environment.production, SMTP_HOST="mx")
    assert isinstance(mailer.sender_for(smtp), mailer.SmtpEmailSender)


async def test_dev_sender_logs_the_mail(
    sessionmaker: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    """Under `pull dev` the message (with its link) is in the API's log, for the developer."""
    sender = mailer.TableEmailSender(echo=True)
    with caplog.at_level("INFO", logger="pull.mail"):
        async with sessionmaker() as s:
            await sender.send(
                session=s,
                email=mailer.Email(
                    to="d@example.com", subject="Hi", body="open /x?token=abc", kind="t"
                ),
            )
            await s.commit()
    assert any(
        "d@example.com" in r.getMessage() and "token=abc" in r.getMessage() for r in caplog.records
    )
    assert [m.subject for m in await mails_to(sessionmaker, "d@example.com")] == ["Hi"]
