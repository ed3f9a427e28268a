"""Outgoing email behind one protocol.

SMTP when SMTP_HOST is set. Otherwise, in development and test, mail goes to the
`outbound_emails` table (in the caller's transaction, so a rolled-back request sends nothing),
where tests read it and `pull dev` logs it. A deployed environment without SMTP drops mail
with a warning rather than keep reset links in a table.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Environment, Settings
from pull.identity import repository as repo
from pull.identity.models import OutboundEmail

log = logging.getLogger("pull.mail")


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    body: str
    kind: str


class EmailSender(Protocol):
    async def send(self, *, session: AsyncSession, email: Email) -> None: ...

    async def send_many(
        self, *, session: AsyncSession, emails: Sequence[Email]
    ) -> list[Exception | None]:
        """Send each; per email, None when sent or the error it raised (the others go on)."""
        ...


class TableEmailSender:
    """Development and test delivery: a row per message."""

    def __init__(self, *, echo: bool = False) -> None:
        self.echo = echo

    async def send(self, *, session: AsyncSession, email: Email) -> None:
        repo.add_outbound_email(
            session,
            OutboundEmail(
                to_address=email.to, subject=email.subject, body=email.body, kind=email.kind
            ),
        )
        if self.echo:
            # Development only: the message is the developer's way to click the link.
            log.info("dev mail to %s: %s\n%s", email.to, email.subject, email.body)

    async def send_many(
        self, *, session: AsyncSession, emails: Sequence[Email]
    ) -> list[Exception | None]:
        """One INSERT for all of them (a notification fan-out's chunk), in the caller's
        transaction: they are all written or, if it rolls back, none."""
        await repo.add_outbound_emails(session, [(e.to, e.subject, e.body, e.kind) for e in emails])
        if self.echo:
            for email in emails:
                log.info("dev mail to %s: %s\n%s", email.to, email.subject, email.body)
        return [None] * len(emails)


class SmtpEmailSender:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str = "",
        password: str = "",
        starttls: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    def _send_sync(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.port == 465:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.starttls and self.port != 465:
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)

    async def send(self, *, session: AsyncSession, email: Email) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = email.to
        message["Subject"] = email.subject
        message.set_content(email.body)
        await asyncio.to_thread(self._send_sync, message)
        log.info("mail sent", extra={"kind": email.kind})

    async def send_many(
        self, *, session: AsyncSession, emails: Sequence[Email]
    ) -> list[Exception | None]:
        out: list[Exception | None] = []
        for email in emails:
            try:
                await self.send(session=session, email=email)
            except Exception as exc:  # this one failed; the ones sent stay sent
                out.append(exc)
            else:
                out.append(None)
        return out


class DisabledEmailSender:
    async def send(self, *, session: AsyncSession, email: Email) -> None:
        log.warning("mail not sent: SMTP_HOST is not set", extra={"kind": email.kind})

    async def send_many(
        self, *, session: AsyncSession, emails: Sequence[Email]
    ) -> list[Exception | None]:
        for email in emails:
            await self.send(session=session, email=email)
        return [None] * len(emails)


def sender_for(settings: Settings) -> EmailSender:
    if settings.smtp_host:
        return SmtpEmailSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )
    if settings.is_deployed:
        return DisabledEmailSender()
    return TableEmailSender(echo=settings.environment is Environment.development)
